/**
 * Headless Chromium for the page's tests: Debian's `chromium` driven by
 * playwright-core through `executablePath` (Playwright's own browser download
 * is not reachable here). A machine without it fails with how to install it;
 * it is never skipped.
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

/** Debian's chromium; MEMGOSSIP_CHROMIUM names another binary. */
export const CHROMIUM = process.env.MEMGOSSIP_CHROMIUM ?? '/usr/bin/chromium'

export async function launchChromium (): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's package (apt-get install -y chromium; .ci/run does) or set MEMGOSSIP_CHROMIUM to a Chromium binary`)
  }
  return await chromium.launch({ executablePath: CHROMIUM, headless: true })
}
