// @ts-check
/**
 * The nodes panel: one capacity bar per node, sorted and filtered, in a
 * virtualised list: only the rows in sight are in the document (a thousand
 * nodes are a thousand entries in an array, about twenty rows in the DOM),
 * and a new answer from the agent redraws those rows only.
 */
import { bar, h, fill } from './dom.js'
import { formatAge, formatSize, percent, shortId } from './format.js'

/** @typedef {import('../api/contract.ts').NodeJson} NodeJson */
/** @typedef {NodeJson & { tentativeBytes: number, finalBytes: number, marks: string[] }} NodeRow */

/** Height of one row in CSS pixels (style.css `.node-row`). */
export const ROW_HEIGHT = 44
/** The list's height, in rows, before it scrolls. */
const MAX_VISIBLE_ROWS = 12
/** Rows drawn above and below the visible ones, so a scroll step shows no gap. */
const OVERSCAN = 4

/** @type {Record<string, (a: NodeRow, b: NodeRow) => number>} */
const SORTS = {
  id: (a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
  headroom: (a, b) => a.headroomBytes - b.headroomBytes,
  committed: (a, b) => share(b.committedBytes, b.allocatableBytes) - share(a.committedBytes, a.allocatableBytes),
  used: (a, b) => share(b.usedBytes, b.totalBytes) - share(a.usedBytes, a.totalBytes),
  marked: (a, b) => b.marks.length - a.marks.length
}

function share (/** @type {number} */ part, /** @type {number} */ whole) {
  return whole > 0 ? part / whole : 0
}

/**
 * The marks a person should see on a node: not active, not alive, undersized, under pressure.
 * @param {NodeJson} n
 */
export function marksOf (n) {
  const marks = []
  if (n.state !== 'active') marks.push(n.state)
  if (n.liveness === 'suspect' || n.liveness === 'dead') marks.push(n.liveness)
  if (n.undersized && n.state !== 'undersized') marks.push('undersized')
  if (n.pressure !== 'ok') marks.push(`pressure ${n.pressure}`)
  if (n.deficitBytes > 0) marks.push(`deficit ${formatSize(n.deficitBytes)}`)
  return marks
}

/**
 * Each node's committed memory split into final and tentative: the tentative
 * part is what admitted but not yet final reservations hold there.
 * @param {NodeJson[]} nodes
 * @param {Map<string, number>} tentativeByNode
 * @returns {NodeRow[]}
 */
export function nodeRows (nodes, tentativeByNode) {
  return nodes.map(n => {
    const tentativeBytes = Math.min(n.committedBytes, tentativeByNode.get(n.id) ?? 0)
    return { ...n, tentativeBytes, finalBytes: n.committedBytes - tentativeBytes, marks: marksOf(n) }
  })
}

/** The text a screen reader reads for a node's bar: every number the bar draws. @param {NodeRow} n */
export function nodeLabel (n) {
  return `node ${n.id}: allocatable ${formatSize(n.allocatableBytes)} of ${formatSize(n.totalBytes)}, ` +
    `committed ${formatSize(n.committedBytes)} (${formatSize(n.finalBytes)} final, ${formatSize(n.tentativeBytes)} tentative), ` +
    `used ${formatSize(n.usedBytes)}, floor ${formatSize(n.floorBytes)}, headroom ${formatSize(n.headroomBytes)}; ` +
    `${n.state}, ${n.liveness}${n.marks.length > 0 ? `; ${n.marks.join(', ')}` : ''}`
}

export class NodeList {
  /**
   * @param {HTMLElement} viewport the scrolling box (its height is fixed by the style sheet)
   * @param {(id: string) => void} onPick Enter on a row: show that node's reservations
   */
  constructor (viewport, onPick) {
    this.viewport = viewport
    this.onPick = onPick
    this.spacer = h('div', { class: 'spacer' })
    viewport.append(this.spacer)
    /** @type {NodeRow[]} */
    this.all = []
    /** @type {NodeRow[]} */
    this.shown = []
    this.filter = ''
    this.onlyMarked = false
    this.sort = 'id'
    this.scale = 0
    this.active = 0
    this.frame = 0
    viewport.addEventListener('scroll', () => this.schedule())
    viewport.addEventListener('keydown', (e) => this.key(e))
    new ResizeObserver(() => this.schedule()).observe(viewport)
  }

  /** New figures from the agent. @param {NodeRow[]} rows */
  set (rows) {
    this.all = rows
    this.apply()
  }

  /** Sort and filter again (after a change of the controls or the figures). */
  apply () {
    const words = this.filter.toLowerCase().split(/\s+/).filter(w => w !== '')
    const haystack = (/** @type {NodeRow} */ n) => [n.id, n.state, n.liveness, ...n.marks, ...Object.entries(n.labels).map(([k, v]) => `${k}=${v}`)].join(' ').toLowerCase()
    this.shown = this.all
      .filter(n => (!this.onlyMarked || n.marks.length > 0) && words.every(w => haystack(n).includes(w)))
      .sort((a, b) => SORTS[this.sort](a, b) || SORTS.id(a, b))
    // One scale for every bar, so a bigger node has a longer bar.
    this.scale = this.all.reduce((m, n) => Math.max(m, n.totalBytes), 0)
    this.active = Math.min(this.active, Math.max(0, this.shown.length - 1))
    this.spacer.style.height = `${this.shown.length * ROW_HEIGHT}px`
    // A short list takes the room it needs; a long one scrolls in at most MAX_VISIBLE_ROWS rows' height.
    this.viewport.style.height = `${Math.max(1, Math.min(this.shown.length, MAX_VISIBLE_ROWS)) * ROW_HEIGHT + 2}px`
    // A shorter list than before: scroll back into it (the drawing reads scrollTop before the browser clamps it).
    const bottom = Math.max(0, this.shown.length * ROW_HEIGHT - this.viewport.clientHeight)
    if (this.viewport.scrollTop > bottom) this.viewport.scrollTop = bottom
    this.draw()
  }

  /** Back to the first row: the filter or the order changed, so the place in the old list means nothing. */
  rewind () {
    this.active = 0
    this.viewport.scrollTop = 0
  }

  schedule () {
    if (this.frame !== 0) return
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw() })
  }

  /** Draw the rows in sight, and no others. */
  draw () {
    const top = this.viewport.scrollTop
    const height = this.viewport.clientHeight || ROW_HEIGHT * 10
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN)
    const last = Math.min(this.shown.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN)
    const rows = []
    for (let i = first; i < last; i++) rows.push(this.row(this.shown[i], i))
    fill(this.spacer, ...rows)
    const active = this.shown[this.active]
    if (active !== undefined) this.viewport.setAttribute('aria-activedescendant', rowId(active.id))
    else this.viewport.removeAttribute('aria-activedescendant')
  }

  /** @param {NodeRow} n @param {number} index */
  row (n, index) {
    const label = nodeLabel(n)
    const el = h('div', {
      class: `node-row${index === this.active ? ' active' : ''}${n.marks.length > 0 ? ' marked' : ''}`,
      role: 'option',
      id: rowId(n.id),
      'aria-selected': index === this.active ? 'true' : 'false',
      'aria-label': label,
      'data-node': n.id
    },
    h('span', { class: 'node-id', title: n.id }, shortId(n.id), n.liveness === 'self' ? h('span', { class: 'self' }, ' (this agent)') : undefined),
    h('span', { class: `badge state-${n.state}` }, n.state),
    h('span', { class: `badge live-${n.liveness}` }, n.liveness, n.heartbeatAgeMs !== undefined && n.liveness !== 'self' ? ` ${formatAge(n.heartbeatAgeMs)}` : ''),
    h('span', { class: 'marks' }, n.marks.filter(m => m !== n.state && m !== n.liveness).join(' · ')),
    bar(this.scale, [
      { from: 0, to: n.totalBytes, cls: 'track' },
      { from: n.allocatableBytes, to: n.totalBytes, cls: 'floor' },
      { from: 0, to: n.finalBytes, cls: 'final', height: 11 },
      { from: n.finalBytes, to: n.committedBytes, cls: 'tentative', height: 11 },
      { from: 0, to: n.usedBytes, cls: 'used', y: 12, height: 4 }
    ], label),
    h('span', { class: 'figures' },
      `${formatSize(n.committedBytes)} / ${formatSize(n.allocatableBytes)} (${percent(n.committedBytes, n.allocatableBytes)})`,
      n.tentativeBytes > 0 ? h('span', { class: 'tentative-text' }, ` ${formatSize(n.tentativeBytes)} tentative`) : undefined,
      h('br'),
      h('span', { class: 'dim' }, `used ${formatSize(n.usedBytes)}, floor ${formatSize(n.floorBytes)}`)))
    el.style.top = `${index * ROW_HEIGHT}px`
    el.addEventListener('click', () => { this.active = index; this.draw(); this.onPick(n.id) })
    return el
  }

  /** Arrow keys, Page Up/Down, Home/End move through the rows; Enter shows the node's reservations. @param {KeyboardEvent} e */
  key (e) {
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW_HEIGHT) - 1)
    /** @type {Record<string, number>} */
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, Home: -Infinity, End: Infinity }
    if (e.key === 'Enter') {
      const n = this.shown[this.active]
      if (n !== undefined) this.onPick(n.id)
      e.preventDefault()
      return
    }
    const move = moves[e.key]
    if (move === undefined || this.shown.length === 0) return
    e.preventDefault()
    this.active = Math.max(0, Math.min(this.shown.length - 1, this.active + (Number.isFinite(move) ? move : move > 0 ? this.shown.length : -this.shown.length)))
    const y = this.active * ROW_HEIGHT
    if (y < this.viewport.scrollTop) this.viewport.scrollTop = y
    else if (y + ROW_HEIGHT > this.viewport.scrollTop + this.viewport.clientHeight) this.viewport.scrollTop = y + ROW_HEIGHT - this.viewport.clientHeight
    this.draw()
  }
}

function rowId (/** @type {string} */ id) {
  return `node-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`
}
