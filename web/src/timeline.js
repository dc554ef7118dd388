// The conversation of the open room: messages grouped by day and author,
// pending ones with their state, and the markers at the top (loading, load
// older, the start of the room, a gap in history). Messages are drawn with a
// keyed update: nodes that did not change stay in place, so text selection,
// focus and scroll position survive new messages. The only state kept here
// is that of the DOM: the drawn nodes, whether the list sticks to its end,
// and how many new messages are below the visible part.
import { h, icon, linkify } from './dom.js';
import { currentRoom } from './state.js';
import { avatar, ui } from './ui.js';

const GROUP_MS = 5 * 60 * 1000; // messages closer than this, in milliseconds, group under one header

const nodeCache = new Map(); // key -> {sig, el}
// stick is true while the list is scrolled to its end, so that a resize
// (window, keyboard, a growing message box) keeps the newest message in view.
let stick = true;
let unseen = 0; // messages below the visible part of the open room

let actions = { loadOlder() {}, retry() {}, discard() {} };

/** initTimeline sets what the timeline's buttons do: loadOlder(room),
 * retry(room, pending) and discard(room, pending). */
export function initTimeline(a) {
  actions = a;
}

/** renderMessages draws the open room's messages, keeping the newest in view
 * when the list was at its end and the message at the top otherwise. */
export function renderMessages(state) {
  const r = currentRoom(state);
  const el = ui.messages;
  if (!r) {
    el.replaceChildren();
    nodeCache.clear();
    return;
  }
  const atBottom = isAtBottom();
  const anchor = atBottom ? null : findAnchor();

  const items = buildItems(state, r);
  const keep = new Set();
  let i = 0;
  for (const it of items) {
    keep.add(it.key);
    let c = nodeCache.get(it.key);
    if (!c || c.sig !== it.sig) {
      const node = it.make();
      node.dataset.key = it.key;
      if (c) c.el.replaceWith(node);
      c = { sig: it.sig, el: node };
      nodeCache.set(it.key, c);
    }
    const at = el.children[i];
    if (at !== c.el) el.insertBefore(c.el, at || null);
    i++;
  }
  while (el.children.length > i) el.lastElementChild.remove();
  for (const k of [...nodeCache.keys()]) if (!keep.has(k)) nodeCache.delete(k);

  if (atBottom) {
    scrollToBottom();
  } else if (anchor) {
    // Keep the message that was at the top of the view where it was, even
    // when its node was redrawn (it may now be grouped with older ones).
    const c = nodeCache.get(anchor.key);
    if (c) el.scrollTop += c.el.offsetTop - el.scrollTop - anchor.offset;
  }
}

/** clearMessages empties the list before another room is drawn. */
export function clearMessages() {
  ui.messages.replaceChildren();
}

/** isAtBottom says whether the list shows its end (within 48 px). */
export function isAtBottom() {
  const el = ui.messages;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
}

/** canScroll says whether the list is taller than its box, so scrolling back is possible. */
export function canScroll() {
  const el = ui.messages;
  return el.scrollHeight > el.clientHeight + 8;
}

function findAnchor() {
  const el = ui.messages;
  const top = el.scrollTop;
  for (const node of el.children) {
    // Only messages keep their node across renders; loaders and markers do not.
    if (node.classList.contains('msg') && node.offsetTop + node.offsetHeight > top) return { key: node.dataset.key, offset: node.offsetTop - top };
  }
  return null;
}

/** scrollToBottom shows the newest message and forgets the unseen ones. */
export function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  stick = true;
  unseen = 0;
  ui.jump.hidden = true;
}

/** scrolled notes where the user scrolled to: at the end, nothing is unseen. */
export function scrolled() {
  stick = isAtBottom();
  if (stick) {
    unseen = 0;
    ui.jump.hidden = true;
  }
}

/** resized keeps the newest message in view when the list or window resized while at its end. */
export function resized() {
  if (stick) scrollToBottom();
}

/** showUnseen counts n new messages from someone else that arrived below
 * the visible part of the list, and offers a jump to them. */
export function showUnseen(n) {
  unseen += n;
  ui.jump.hidden = unseen === 0;
  ui.jumpText.textContent = unseen === 1 ? '1 new message' : `${unseen} new messages`;
}

function buildItems(state, r) {
  const items = [];
  if (r.loading && r.messages.length === 0) {
    items.push({ key: 'loading', sig: '', make: () => h('div', { class: 'loading', text: 'Loading messages…' }) });
  } else if (r.hasOlder && r.loaded) {
    items.push({
      key: 'older',
      // The room is part of the signature: the button loads this room's history.
      sig: `${r.name}|${r.loadingOlder ? 'busy' : 'idle'}`,
      make: () =>
        h('div', { class: 'older' }, r.loadingOlder
          ? h('span', { class: 'spinner', role: 'progressbar', 'aria-label': 'Loading older messages' })
          : h('button', { type: 'button', class: 'link-btn', onclick: () => actions.loadOlder(r), text: 'Load older messages' })),
    });
  } else if (r.loaded) {
    items.push({
      key: 'start',
      sig: r.name,
      make: () =>
        h('div', { class: 'room-start' },
          h('div', { class: 'room-start-icon', 'aria-hidden': 'true' }, icon('hash')),
          h('h2', { text: `Welcome to #${r.name}` }),
          h('p', { class: 'muted', text: 'This is the very beginning of the room. Say hello!' })),
    });
  }
  if (r.gap) {
    items.push({ key: 'gap', sig: '', make: () => h('div', { class: 'gap', text: 'Some older messages are no longer kept by the server.' }) });
  }

  let prev = null;
  let day = '';
  const all = [...r.messages, ...r.pending.map((p) => ({ pending: p, userId: state.me?.userId, name: state.me?.name, ts: p.ts, id: 'p:' + p.cid }))];
  for (const m of all) {
    const ts = Number(m.ts) || 0;
    const d = dayKey(ts);
    if (d !== day) {
      day = d;
      prev = null;
      items.push({ key: 'day:' + d, sig: dayLabel(ts), make: () => h('div', { class: 'day', role: 'separator' }, h('span', { text: dayLabel(ts) })) });
    }
    const grouped = !!prev && prev.userId === m.userId && ts - (Number(prev.ts) || 0) < GROUP_MS;
    if (m.pending) {
      const p = m.pending;
      items.push({ key: m.id, sig: `${grouped}|${p.status}|${p.error}`, make: () => messageNode(state, m, grouped, p, r) });
    } else {
      items.push({ key: 'm:' + m.id, sig: String(grouped), make: () => messageNode(state, m, grouped, null, r) });
    }
    prev = m;
  }
  return items;
}

function messageNode(state, m, grouped, pending, r) {
  const me = state.me && m.userId === state.me.userId;
  const ts = Number(m.ts) || Date.now();
  const time = h('time', { datetime: new Date(ts).toISOString(), title: fullTime(ts), text: shortTime(ts) });
  const text = h('div', { class: 'text' }, linkify(String(m.text ?? pending?.text ?? '')));
  const cls = ['msg'];
  if (grouped) cls.push('grouped');
  if (me) cls.push('own');
  if (pending) cls.push('pending', pending.status);
  return h(
    'article',
    { class: cls.join(' '), 'data-testid': 'message', 'data-id': pending ? null : m.id, 'data-user': m.userId, 'aria-label': `${m.name || m.userId}, ${fullTime(ts)}` },
    grouped ? h('div', { class: 'gutter' }, time) : avatar(m.userId, m.name || m.userId, ''),
    h(
      'div',
      { class: 'body' },
      grouped ? null : h('div', { class: 'meta' }, h('span', { class: 'author', text: m.name || m.userId }), time),
      text,
      pending ? pendingNote(pending, r) : null,
    ),
  );
}

function pendingNote(p, r) {
  if (p.status === 'failed') {
    return h(
      'div',
      { class: 'note note-error', role: 'alert' },
      h('span', { text: `Not sent: ${p.error}` }),
      h('button', { type: 'button', class: 'link-btn', onclick: () => actions.retry(r, p), text: 'Retry' }),
      h('button', { type: 'button', class: 'link-btn', onclick: () => actions.discard(r, p), text: 'Delete' }),
    );
  }
  return h('div', { class: 'note', text: p.status === 'queued' ? 'Waiting for the connection…' : 'Sending…' });
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });

function shortTime(ts) {
  return timeFmt.format(new Date(ts));
}

function fullTime(ts) {
  return fullFmt.format(new Date(ts));
}

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

function dayLabel(ts) {
  const today = new Date();
  const key = dayKey(ts);
  if (key === dayKey(today.getTime())) return 'Today';
  if (key === dayKey(today.getTime() - 86400000)) return 'Yesterday';
  return dayFmt.format(new Date(ts));
}
