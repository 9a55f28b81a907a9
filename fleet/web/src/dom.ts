// Element builders. Every string from the API reaches the page as a text node or an attribute
// value through these, never as markup: there is no innerHTML anywhere in the dashboard.

export type Child = Node | string | number | null | undefined | false | readonly Child[];
type Listener = (ev: Event) => void;
export type Attrs = Record<string, string | number | boolean | null | undefined | Listener>;

function applyAttrs(el: Element, attrs: Attrs | undefined): void {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') {
      el.addEventListener(key.replace(/^on/, ''), value);
      continue;
    }
    // Inline style attributes are refused by the page's CSP; styling goes through classes.
    if (key === 'style') throw new Error('style attributes are not allowed; use a class');
    el.setAttribute(key === 'className' ? 'class' : key, value === true ? '' : String(value));
  }
}

function append(el: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** An HTML element. `on<event>` attributes given a function become listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  applyAttrs(el, attrs ?? undefined);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element; presentation attributes (fill, stroke) are attributes, which the CSP allows. */
export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs ?? undefined);
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Announces a short message to screen readers (and keeps it visible to tests). */
export function announce(message: string): void {
  const box = document.getElementById('status');
  if (box) box.textContent = message;
}
