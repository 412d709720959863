// @ts-check
/**
 * The live view of the cluster (docs/design.md "Interfaces", "The page"). It
 * reads the public API only, as `memgossip status`, `reservations` and
 * `watch` do, and keeps itself current from the event stream: an event marks
 * the data it changes as stale, and one refresh per kind of data runs shortly
 * after (several events in a burst make one refresh, never one each).
 */
import { ApiRefusal, call, followEvents, setToken, token } from './api.js'
import { byId, fill, h } from './dom.js'
import { formatSize, readableReason, shortId } from './format.js'
import { NodeList, nodeRows } from './nodes.js'
import { FitPanel } from './fit.js'

/** @typedef {import('../api/contract.ts').CapacityJson} CapacityJson */
/** @typedef {import('../api/contract.ts').StateJson} StateJson */
/** @typedef {import('../api/contract.ts').ReservationListJson} ReservationListJson */
/** @typedef {import('../api/contract.ts').VerdictJson} VerdictJson */
/** @typedef {import('../api/contract.ts').RentJson} RentJson */
/** @typedef {import('../api/contract.ts').AlertJson} AlertJson */
/** @typedef {import('../api/contract.ts').AlertListJson} AlertListJson */
/** @typedef {import('../api/contract.ts').ApiEvent} ApiEvent */
/** @typedef {'capacity' | 'state' | 'reservations' | 'alerts'} Source */

/** Events in a burst within this window make one refresh. */
const COALESCE_MS = 150
/**
 * Measured use and heartbeat ages change with every node's heartbeat, which
 * the event stream does not carry: the capacity figures are read again this
 * often while the page is visible. One request per period, whatever the size
 * of the cluster.
 */
const FIGURES_REFRESH_MS = 10_000
/** Members, alerts listed at most one by one; beyond it, counts. */
const MAX_LISTED = 50
/** Reservations drawn at most; the filters narrow the rest. */
const MAX_RESERVATION_ROWS = 200
const RECONNECT_MIN_MS = 500
const RECONNECT_MAX_MS = 10_000

/** Which data each event makes stale. @type {Record<ApiEvent['event'], Source[]>} */
const STALE_AFTER = {
  hello: ['capacity', 'state', 'reservations', 'alerts'],
  verdict: ['reservations', 'capacity'],
  alert: ['alerts', 'capacity'],
  peer: ['state', 'capacity'],
  joined: ['state', 'capacity'],
  membership: ['state', 'capacity', 'reservations'],
  liveness: ['state', 'capacity'],
  oom: ['reservations', 'alerts'],
  pressure: ['capacity', 'alerts']
}

const data = {
  /** @type {CapacityJson | undefined} */ capacity: undefined,
  /** @type {StateJson | undefined} */ state: undefined,
  /** @type {ReservationListJson | undefined} */ reservations: undefined,
  /** @type {Map<string, RentJson['lines'][number]>} */ rent: new Map(),
  /** @type {AlertJson[]} */ alerts: []
}

// ------------------------------------------------------------------ refreshing

/** @type {Set<Source>} */
const stale = new Set()
let timer = 0
let loading = false

/** Mark data stale; one refresh of everything stale runs soon. @param {Source[]} sources */
function invalidate (sources) {
  for (const s of sources) stale.add(s)
  if (timer === 0 && !loading) timer = window.setTimeout(refresh, COALESCE_MS)
}

async function refresh () {
  timer = 0
  const want = [...stale]
  stale.clear()
  loading = true
  try {
    await Promise.all(want.map(load))
    showProblem(undefined)
  } catch (error) {
    onRefusal(error)
  } finally {
    loading = false
    if (stale.size > 0) invalidate([])
  }
}

/** @param {Source} source */
async function load (source) {
  switch (source) {
    case 'capacity':
      data.capacity = await call('/v1/capacity')
      drawNodes()
      // The membership panel counts members by the liveness the capacity answer carries (it may arrive after the state).
      drawMembership()
      break
    case 'state':
      data.state = await call('/v1/state')
      drawMembership()
      drawHeader()
      break
    case 'reservations': {
      /** @type {[ReservationListJson, RentJson]} */
      const [list, rent] = await Promise.all([call('/v1/reservations'), call('/v1/rent')])
      data.reservations = list
      data.rent = new Map(rent.lines.map(l => [l.id, l]))
      drawReservations()
      drawNodes()
      drawHeader()
      break
    }
    case 'alerts':
      data.alerts = /** @type {AlertListJson} */ (await call('/v1/alerts')).alerts
      drawAlerts()
      break
  }
}

// ------------------------------------------------------------------ the event stream

let streamAbort = new AbortController()

async function follow () {
  let wait = RECONNECT_MIN_MS
  for (;;) {
    const signal = streamAbort.signal
    setLive('connecting')
    try {
      await followEvents((event) => {
        setLive('live')
        wait = RECONNECT_MIN_MS
        invalidate(STALE_AFTER[event.event] ?? [])
      }, signal)
    } catch (error) {
      if (error instanceof ApiRefusal && error.status === 401) {
        // A refusal of a token no longer in use: start() already follows with the new one.
        if (error.refusesCurrentToken) askToken(error.message)
        return
      }
    }
    if (signal.aborted) return
    setLive(`reconnecting in ${(wait / 1000).toFixed(1)} s`)
    await new Promise(resolve => setTimeout(resolve, wait))
    wait = Math.min(RECONNECT_MAX_MS, wait * 2)
  }
}

function setLive (/** @type {string} */ what) {
  const el = byId('live')
  el.textContent = what
  el.className = what === 'live' ? 'live on' : 'live'
}

// ------------------------------------------------------------------ the token

/**
 * A refusal of the token in use asks for another (one of a token already
 * replaced is old news: the new token's reads are under way); anything else
 * is shown in words.
 * @param {unknown} error
 */
function onRefusal (error) {
  if (error instanceof ApiRefusal && error.status === 401) {
    if (error.refusesCurrentToken) askToken(error.message)
  } else showProblem(error instanceof ApiRefusal ? `${error.message} (${error.code})` : 'the page could not read the agent')
}

function askToken (/** @type {string} */ why) {
  streamAbort.abort()
  setLive('token needed')
  const form = byId('token-form')
  form.hidden = false
  byId('token-why').textContent = token() === undefined ? 'This agent needs its API token (--api-token).' : `The agent refused the token: ${why}`
  byId('token').focus()
}

function start () {
  byId('token-form').hidden = true
  streamAbort = new AbortController()
  invalidate(['capacity', 'state', 'reservations', 'alerts'])
  void follow()
}

/** @param {string | undefined} text */
function showProblem (text) {
  const el = byId('problem')
  el.hidden = text === undefined
  el.textContent = text ?? ''
}

// ------------------------------------------------------------------ drawing

/** A form control of the page. @param {string} id */
function field (id) {
  return /** @type {HTMLInputElement | HTMLSelectElement} */ (byId(id))
}

const nodeList = new NodeList(byId('nodes'), (id) => {
  field('res-node').value = id
  drawReservations()
  byId('reservations-panel').scrollIntoView({ block: 'nearest' })
})

/** What admitted, not yet final reservations hold per node. */
function tentativeByNode () {
  /** @type {Map<string, number>} */
  const out = new Map()
  for (const v of data.reservations?.reservations ?? []) {
    if (v.status !== 'admitted' || v.final) continue
    for (const node of v.runningOn.length > 0 ? v.runningOn : v.nodes) out.set(node, (out.get(node) ?? 0) + v.effectiveBytes)
  }
  return out
}

function drawNodes () {
  const capacity = data.capacity
  if (capacity === undefined) return
  const rows = nodeRows(capacity.nodes, tentativeByNode())
  nodeList.set(rows)
  const tentative = rows.filter(n => n.member).reduce((a, n) => a + n.tentativeBytes, 0)
  const marked = rows.filter(n => n.marks.length > 0).length
  fill(byId('totals'),
    `${capacity.nodes.length} node(s), ${capacity.members} member(s) · allocatable ${formatSize(capacity.allocatableBytes)} · ` +
    `committed ${formatSize(capacity.committedBytes - tentative)} final + ${formatSize(tentative)} tentative · ` +
    `headroom ${formatSize(capacity.headroomBytes)} · ${marked} marked · showing ${nodeList.shown.length}`)
}

function drawHeader () {
  const s = data.state
  if (s === undefined) return
  const pending = data.reservations?.pending ?? s.pending
  fill(byId('whoami'), `cluster '${s.cluster}' as seen by ${shortId(s.self)} · view ${s.view.epoch} · `,
    h('span', { id: 'pending', 'data-pending': pending }, `${pending} pending (tentative)`))
}

function drawMembership () {
  const s = data.state
  if (s === undefined) return
  const liveness = new Map((data.capacity?.nodes ?? []).map(n => [n.id, n.liveness]))
  const changes = s.viewChanges.map(c => h('li', {},
    `${c.kind} of ${c.targets.map(shortId).join(', ')} proposed by ${shortId(c.by)}: acknowledged by ${c.acknowledged.length} of the ${c.majorityOf} needed`,
    c.waitingFor.length > 0 ? `; waiting for ${c.waitingFor.map(shortId).join(', ')}` : ''))
  const requests = s.admissionRequests.map(r => h('li', {}, `${shortId(r.node)} asks to join through ${shortId(r.sponsor)}`))
  fill(byId('membership'),
    h('p', {}, `view ${s.view.epoch} (${readableReason(s.view.cause)}), ${s.view.members.length} member(s), digest ${s.view.digest.slice(0, 12)}; ` +
      `this agent is ${s.standing}${s.writesRefused !== undefined ? `, writes refused: ${s.writesRefused}` : ''}; ` +
      `clock ${s.clock.behindMs > 0 ? `${s.clock.behindMs} ms behind` : 'in step'} (bound ${s.clock.maxOffsetMs} ms)`),
    ...membersOf(s.view.members, liveness),
    h('h3', {}, `Open view changes (${s.viewChanges.length})`),
    changes.length > 0 ? h('ul', {}, ...changes) : h('p', { class: 'dim' }, 'none'),
    ...(requests.length > 0 ? [h('h3', {}, 'Admission requests'), h('ul', {}, ...requests)] : []))
}

/**
 * The view's members with their liveness: each one in a small view; in a
 * large one the counts per liveness and the members that are not alive (the
 * ones a person looks for), at most MAX_LISTED.
 * @param {string[]} members
 * @param {Map<string, string>} liveness
 */
function membersOf (members, liveness) {
  const item = (/** @type {string} */ m) => h('li', { title: m }, `${shortId(m)} `, h('span', { class: `badge live-${liveness.get(m) ?? 'unknown'}` }, liveness.get(m) ?? 'unknown'))
  if (members.length <= MAX_LISTED) return [h('ul', { class: 'members' }, ...members.map(item))]
  /** @type {Map<string, number>} */
  const counts = new Map()
  for (const m of members) counts.set(liveness.get(m) ?? 'unknown', (counts.get(liveness.get(m) ?? 'unknown') ?? 0) + 1)
  const notAlive = members.filter(m => !['alive', 'self'].includes(liveness.get(m) ?? 'unknown'))
  return [
    h('p', {}, [...counts].map(([state, n]) => `${n} ${state}`).join(', ')),
    ...(notAlive.length > 0 ? [h('ul', { class: 'members' }, ...notAlive.slice(0, MAX_LISTED).map(item))] : []),
    ...(notAlive.length > MAX_LISTED ? [h('p', { class: 'dim' }, `and ${notAlive.length - MAX_LISTED} more not alive`)] : [])
  ]
}

function drawAlerts () {
  const alerts = data.alerts
  byId('alerts-count').textContent = String(alerts.length)
  fill(byId('alerts'), alerts.length === 0
    ? h('p', { class: 'dim' }, 'none')
    : h('ul', {}, ...alerts.slice(0, MAX_LISTED).map(a => h('li', { class: 'alert' },
      h('strong', {}, a.kind), ` on ${shortId(a.node)}: ${a.message} `, h('span', { class: 'setting' }, `setting: ${a.setting}`))),
      ...(alerts.length > MAX_LISTED ? [h('li', { class: 'dim' }, `and ${alerts.length - MAX_LISTED} more (GET /v1/alerts)`)] : [])))
}

/** `tentative: waits for clocks of 12D3…abcd`; `final`. @param {VerdictJson} v */
function finality (v) {
  const queued = v.status === 'queued' && v.queuePosition !== undefined ? `, ${v.queuePosition} of ${v.queueLength ?? '?'} in the queue` : ''
  if (v.final) return `final${queued}`
  const whom = v.waitsFor.length > 0 ? ` of ${v.waitsFor.map(shortId).join(', ')}` : ''
  return `tentative${v.waitingOn !== undefined ? `: waits for ${v.waitingOn}${whom}` : ''}${queued}`
}

function drawReservations () {
  const list = data.reservations
  if (list === undefined) return
  const status = field('res-status').value
  const node = field('res-node').value.trim()
  const label = field('res-label').value.trim()
  const [labelKey, labelValue] = label.includes('=') ? [label.slice(0, label.indexOf('=')), label.slice(label.indexOf('=') + 1)] : [label, undefined]
  const shown = list.reservations.filter(v =>
    (status === '' || (status === 'tentative' ? !v.final : v.status === status)) &&
    (node === '' || [...v.nodes, ...v.runningOn].some(n => n === node || n.endsWith(node) || shortId(n) === node)) &&
    (label === '' || (labelKey in v.labels && (labelValue === undefined || v.labels[labelKey] === labelValue))))
  const rows = shown.slice(0, MAX_RESERVATION_ROWS).map(v => {
    const rent = data.rent.get(v.id)
    const nodes = v.runningOn.length > 0 ? v.runningOn : v.nodes
    return h('tr', { 'data-reservation': v.id, 'data-status': v.status, 'data-final': String(v.final) },
      h('td', {}, h('span', { class: 'res-id' }, v.id), ...Object.entries(v.labels).map(([k, val]) => h('span', { class: 'label' }, `${k}=${val}`))),
      h('td', {}, h('span', { class: `badge status-${v.status}` }, v.status)),
      h('td', { class: v.final ? 'final-cell' : 'tentative-cell' }, finality(v)),
      h('td', { class: 'num' }, v.effectiveBytes !== v.bytes ? `${formatSize(v.effectiveBytes)} (of ${v.size})` : v.size),
      h('td', {}, nodes.length > 0 ? nodes.map(shortId).join(', ') : '-'),
      h('td', { title: v.reason }, `${readableReason(v.reason)} `, h('span', { class: 'code' }, v.code)),
      h('td', { class: 'num' }, rent !== undefined ? `${(rent.byteSeconds / 1024 ** 3 / 3600).toFixed(3)} GiB·h, ${rent.cost.toFixed(4)}` : '-'))
  })
  fill(byId('reservations'), ...rows)
  byId('res-summary').textContent = `${shown.length} of ${list.reservations.length} reservation(s), ${list.pending} pending (tentative)` +
    (shown.length > MAX_RESERVATION_ROWS ? `; showing the first ${MAX_RESERVATION_ROWS}: narrow the filter` : '')
}

// ------------------------------------------------------------------ controls

function wire () {
  byId('token-form').addEventListener('submit', (e) => {
    e.preventDefault()
    setToken(field('token').value.trim())
    field('token').value = ''
    start()
  })
  byId('forget-token').addEventListener('click', () => { setToken(undefined); askToken('') })
  const nodeFilter = /** @type {HTMLInputElement} */ (byId('node-filter'))
  nodeFilter.addEventListener('input', () => { nodeList.filter = nodeFilter.value; nodeList.rewind(); drawNodes() })
  const nodeSort = /** @type {HTMLSelectElement} */ (byId('node-sort'))
  nodeSort.addEventListener('change', () => { nodeList.sort = nodeSort.value; nodeList.rewind(); drawNodes() })
  const onlyMarked = /** @type {HTMLInputElement} */ (byId('node-marked'))
  onlyMarked.addEventListener('change', () => { nodeList.onlyMarked = onlyMarked.checked; nodeList.rewind(); drawNodes() })
  for (const id of ['res-status', 'res-node', 'res-label']) byId(id).addEventListener('input', drawReservations)
  new FitPanel(byId('fit-form'), byId('fit-answer'), onRefusal)
  setInterval(() => { if (document.visibilityState === 'visible' && byId('token-form').hidden) invalidate(['capacity']) }, FIGURES_REFRESH_MS)
}

wire()
start()
