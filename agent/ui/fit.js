// @ts-check
/**
 * "Does it fit?": the form sends `POST /v1/fit` (the dry run `memgossip fit`
 * makes; nothing is written) and draws the answer: the verdict and its
 * reason, the count of nodes per reason, and each node's headroom before and
 * after. Bad input shows the API's own error text.
 */
import { ApiRefusal, call } from './api.js'
import { bar, fill, h } from './dom.js'
import { formatSize, readableReason, shortId } from './format.js'

/** @typedef {import('../api/contract.ts').FitAnswerJson} FitAnswerJson */
/** @typedef {import('../api/contract.ts').FitRequestIn} FitRequestIn */

export class FitPanel {
  /**
   * @param {HTMLElement} form
   * @param {HTMLElement} out
   * @param {(error: unknown) => void} onOther what to do with a refusal that is not about the input (a token)
   */
  constructor (form, out, onOther) {
    this.form = /** @type {HTMLFormElement} */ (form)
    this.out = out
    this.onOther = onOther
    this.form.addEventListener('submit', (e) => { e.preventDefault(); void this.ask() })
  }

  async ask () {
    const fields = new FormData(this.form)
    const size = String(fields.get('size') ?? '').trim()
    const placement = String(fields.get('placement') ?? '').trim()
    /** @type {FitRequestIn} */
    const request = { size, ...(placement !== '' ? { placement } : {}) }
    fill(this.out, h('p', { class: 'dim' }, 'asking…'))
    try {
      /** @type {FitAnswerJson} */
      const answer = await call('/v1/fit', { method: 'POST', body: request })
      fill(this.out, ...drawFit(answer))
    } catch (error) {
      if (error instanceof ApiRefusal && error.status === 400) {
        fill(this.out, h('p', { class: 'error', role: 'alert', 'data-code': error.code }, error.message, h('span', { class: 'code' }, ` ${error.code}${error.field !== undefined ? ` (${error.field})` : ''}`)))
        return
      }
      fill(this.out)
      this.onOther(error)
    }
  }
}

/** @param {FitAnswerJson} a */
export function drawFit (a) {
  const counts = Object.entries(a.histogramCounts).sort((x, y) => (y[1] ?? 0) - (x[1] ?? 0))
  const most = counts.reduce((m, [, n]) => Math.max(m, n ?? 0), 0)
  const scale = a.perNode.reduce((m, n) => Math.max(m, n.allocatableBytes), 0)
  return [
    h('p', { class: a.fits ? 'verdict fits' : 'verdict no', 'data-fits': String(a.fits), role: 'status' },
      h('strong', {}, a.fits ? `${a.size} fits` : `${a.size} does not fit`),
      ` (${a.placement}${a.nodes.length > 0 ? ` on ${a.nodes.map(shortId).join(', ')}` : ''}): ${readableReason(a.reason)} `, h('span', { class: 'code' }, a.code),
      a.final ? '' : ` · tentative: waits for ${a.waitingOn ?? 'members'}${a.waitsFor.length > 0 ? ` of ${a.waitsFor.map(shortId).join(', ')}` : ''}`),
    h('p', { id: 'fit-histogram', class: 'histogram' }, a.histogram),
    h('table', { class: 'counts' },
      h('caption', {}, 'Nodes per reason'),
      ...counts.map(([reason, n]) => h('tr', {},
        h('th', { scope: 'row' }, reason),
        h('td', { class: 'num' }, String(n)),
        h('td', { class: 'barcell' }, bar(most, [{ from: 0, to: n ?? 0, cls: reason === 'Fits' ? 'final' : 'refused' }], `${reason}: ${n} node(s)`))))),
    h('table', { class: 'per-node' },
      h('caption', {}, 'Headroom per node, before and after'),
      h('thead', {}, h('tr', {}, h('th', {}, 'node'), h('th', {}, 'state'), h('th', {}, 'fit'), h('th', { class: 'num' }, 'before'), h('th', { class: 'num' }, 'after'), h('th', {}, ''))),
      h('tbody', {}, ...a.perNode.map(n => {
        const after = n.headroomAfterBytes
        const label = `${n.node}: ${n.fit}, headroom ${formatSize(n.headroomBytes)} before${after !== undefined ? `, ${formatSize(after)} after` : ''}${n.chosen ? ', chosen' : ''}`
        return h('tr', { 'data-node': n.node, class: n.chosen ? 'chosen' : undefined },
          h('td', { title: n.node }, shortId(n.node), n.chosen ? ' ✓' : ''),
          h('td', {}, n.state),
          h('td', {}, n.fit),
          h('td', { class: 'num' }, formatSize(n.headroomBytes)),
          h('td', { class: 'num' }, after !== undefined ? formatSize(after) : '-'),
          h('td', { class: 'barcell' }, bar(scale, [
            { from: 0, to: Math.max(0, n.headroomBytes), cls: 'track', height: 7 },
            { from: 0, to: Math.max(0, after ?? n.headroomBytes), cls: after !== undefined && after < 0 ? 'refused' : 'after', y: 9, height: 7 }
          ], label)))
      }))),
    ...(a.warnings.length > 0 ? [h('ul', { class: 'warnings' }, ...a.warnings.map(w => h('li', {}, w)))] : [])
  ]
}
