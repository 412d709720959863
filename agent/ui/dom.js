// @ts-check
/** A few DOM helpers: elements from a tag, attributes and children; SVG bars. */

const SVG_NS = 'http://www.w3.org/2000/svg'

/**
 * `h('td', { class: 'num' }, '2.00 GiB')`: an element; attributes whose value
 * is undefined or false are left out, `true` sets an empty attribute.
 * @param {string} tag
 * @param {Record<string, string | number | boolean | undefined>} [attrs]
 * @param {...(Node | string | undefined)} children
 * @returns {HTMLElement}
 */
export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  for (const child of children) if (child !== undefined) el.append(child)
  return el
}

/** @param {Element} el @param {Record<string, string | number | boolean | undefined>} attrs */
function setAttrs (el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    el.setAttribute(k, v === true ? '' : String(v))
  }
}

/**
 * One horizontal bar of segments, as SVG (attributes, not inline styles: the
 * page's policy allows no inline style). `scale` is the byte count of the full
 * width; the bar itself is hidden from screen readers, whose text is `label`.
 * @param {number} scale
 * @param {Array<{ from: number, to: number, cls: string, y?: number, height?: number }>} segments
 * @param {string} label what the bar shows, with its numbers
 */
export function bar (scale, segments, label) {
  const svg = document.createElementNS(SVG_NS, 'svg')
  setAttrs(svg, { class: 'bar', viewBox: '0 0 1000 16', preserveAspectRatio: 'none', role: 'img', 'aria-label': label })
  const title = document.createElementNS(SVG_NS, 'title')
  title.textContent = label
  svg.append(title)
  const x = (/** @type {number} */ bytes) => scale > 0 ? Math.max(0, Math.min(1000, (bytes / scale) * 1000)) : 0
  for (const s of segments) {
    const width = x(s.to) - x(s.from)
    if (width <= 0) continue
    const rect = document.createElementNS(SVG_NS, 'rect')
    setAttrs(rect, { x: x(s.from).toFixed(2), y: s.y ?? 0, width: width.toFixed(2), height: s.height ?? 16, class: s.cls })
    svg.append(rect)
  }
  return svg
}

/** Replace what `el` holds. @param {Element} el @param {...(Node | string)} children */
export function fill (el, ...children) {
  el.replaceChildren(...children)
}

/** The element with this id, typed. @template {HTMLElement} T @param {string} id @returns {T} */
export function byId (id) {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`the page has no #${id}`)
  return /** @type {T} */ (el)
}
