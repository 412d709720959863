/**
 * The browser page every agent serves at `/ui` (docs/design.md "Interfaces",
 * "The page"): static files from `agent/ui/`, read once at start and served
 * as they are. No front-end build: the page is plain ES modules and CSS.
 *
 * The files hold no cluster data, so they are served without the bearer
 * token (a browser cannot add a header to a navigation); the page asks for
 * the token and sends it on every API call it makes (docs/decisions.md "The
 * page: public files, token in the tab").
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerResponse } from 'node:http'
import { ApiError } from './contract.ts'

/** The content type of each kind of file the page is made of; any other file in the folder is not served. */
export const UI_CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml'
} as const

/**
 * Only this origin's own files, no inline script, no framing: the page shows a
 * cluster's state and holds a token, so nothing else may run in it or wrap it.
 */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/**
 * Where the files are: `agent/ui/` next to this module when run from the
 * sources (tsx), and the same folder of the checkout when run from the
 * compiled `dist/agent/api/` or from the bundle in `dist/bundle/` (the build
 * compiles and bundles TypeScript only).
 */
function uiDir (): string {
  const candidates = [new URL('../ui/', import.meta.url), new URL('../../../agent/ui/', import.meta.url), new URL('../../agent/ui/', import.meta.url)].map(u => fileURLToPath(u))
  return candidates.find(dir => existsSync(join(dir, 'index.html'))) ?? candidates[0]
}

interface UiFile { body: Buffer, type: string }

/** The page's files by name, read once; an agent without them answers 404 on /ui with what is missing. */
export class UiFiles {
  readonly dir: string
  private readonly files = new Map<string, UiFile>()

  constructor (dir: string = uiDir()) {
    this.dir = dir
    if (!existsSync(dir)) return
    for (const name of readdirSync(dir)) {
      const type = (UI_CONTENT_TYPES as Record<string, string>)[extname(name)]
      if (type !== undefined) this.files.set(name, { body: readFileSync(join(dir, name)), type })
    }
  }

  /** The names served under `/ui/`. */
  names (): string[] {
    return [...this.files.keys()].sort()
  }

  /** Write one file (`index.html` for `/ui`), or throw the 404. */
  send (res: ServerResponse, name: string): void {
    const file = this.files.get(name)
    if (file === undefined) {
      throw new ApiError('NotFound', name === 'index.html'
        ? `the page's files are missing from ${this.dir}`
        : `no file '${name.slice(0, 80)}' in the page (it has: ${this.names().join(', ')})`)
    }
    res.writeHead(200, {
      'Content-Type': file.type,
      'Content-Length': file.body.length,
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      // Small files, read at start: revalidate so a restarted agent's page is the one it serves.
      'Cache-Control': 'no-cache'
    })
    res.end(file.body)
  }
}
