// A tiny DOM builder. Every piece of text goes in through textContent or a
// text node, never through innerHTML, so message text can not become markup.

/** $ returns the element with the given id. */
export const $ = (id) => document.getElementById(id);

/**
 * h creates an element. `props` sets attributes (class, aria-*, data-*, ...),
 * `on` handlers (onclick: fn) and `text` (textContent); children are nodes or
 * strings (added as text nodes); null and false are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = String(v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

/** icon returns an inline SVG that uses a symbol of the page's sprite. */
export function icon(name, cls = '') {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('aria-hidden', 'true');
  if (cls) svg.setAttribute('class', cls);
  const use = document.createElementNS(ns, 'use');
  use.setAttribute('href', '#i-' + name);
  svg.append(use);
  return svg;
}

/** linkify splits text into text nodes and links for http(s) URLs. */
export function linkify(text) {
  const out = [];
  const re = /\bhttps?:\/\/[^\s<>"']+/gi;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let url = m[0];
    // Leave closing punctuation to the sentence.
    const trail = /[.,;:!?)\]}]+$/.exec(url);
    if (trail) url = url.slice(0, -trail[0].length);
    let href = null;
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch {
      href = null;
    }
    if (!href) continue;
    if (m.index > at) out.push(document.createTextNode(text.slice(at, m.index)));
    const a = document.createElement('a');
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    a.textContent = url;
    out.push(a);
    at = m.index + url.length;
    re.lastIndex = at;
  }
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}
