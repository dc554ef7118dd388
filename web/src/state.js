// The page's state and every change to it: rooms, the messages of each room,
// unread counts, presence, who is typing, the open room and the session.
// Nothing here touches the DOM, the socket, storage or a timer, so the rules
// run (and are tested) in Node: `npm --prefix web test`. Each change works on
// the state object it is given and returns what the caller must act on (a
// room to fetch, a room to open instead); app.js does the fetching and asks
// the views to draw.
import { mergeMessages } from './ids.js';

/** ROOM_RE is the shape of a room name the server accepts. */
export const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** DEFAULT_CONFIG is what the page assumes when GET /chatd/config.json fails. */
export const DEFAULT_CONFIG = Object.freeze({ authMode: 'dev', devInsecure: false, messageBytes: 4096, version: '' });

/** createState returns the state of a page that has not signed in yet. */
export function createState(config = DEFAULT_CONFIG) {
  return {
    config: { ...config },
    identity: null, // what we sign in with: {mode:'dev', name, userId} or {mode:'jwt', token}
    me: null, // {userId, name} from the server's session event
    conn: 'connecting', // connecting | connected | reconnecting | offline
    connDetail: '', // the technical reason of the last change, shown as the status's tooltip
    reconnectText: 'Connection lost. Reconnecting…', // what the banner says while reconnecting
    hadSession: false, // a session event was seen on this connection before
    rooms: new Map(), // room name -> Room (see newRoom)
    order: [], // room names in the sidebar's order
    current: null, // the open room's name
    wantRoom: null, // a room to join and open once connected (deep link)
  };
}

/** newRoom returns the state of a room the user belongs to, before any fetch. */
export function newRoom(name) {
  return {
    name,
    messages: [], // confirmed messages, sorted by id
    seen: new Set(), // ids in messages
    pending: [], // own messages not confirmed yet: {cid, text, ts, status, error, attempt}
    loaded: false, // the latest page of history was fetched
    loading: false,
    hasOlder: true, // history may have messages before messages[0]
    loadingOlder: false,
    gap: false, // history lost messages between two we have (history.size)
    unread: 0,
    typing: new Map(), // userId -> name, of those typing now
    presence: new Map(), // userId -> name, of those online in the room
    presenceLoaded: false,
    catchupFrom: undefined, // last id seen before a disconnect (null: none seen)
    draft: '',
  };
}

/** roomNameError says why name can not be joined from the page, or '' when it can. */
export function roomNameError(name) {
  if (!ROOM_RE.test(name)) return 'Use 1 to 64 letters, digits or _ - . :';
  if (name.startsWith('user:')) return 'Names starting with “user:” are reserved.';
  return '';
}

/** currentRoom returns the open room, or null. */
export function currentRoom(state) {
  return state.current ? state.rooms.get(state.current) || null : null;
}

/** addRoom adds a room to the sidebar (kept in name order) and returns it;
 * a room already there is returned as it is. */
export function addRoom(state, name) {
  let r = state.rooms.get(name);
  if (r) return r;
  r = newRoom(name);
  state.rooms.set(name, r);
  state.order.push(name);
  state.order.sort((a, b) => a.localeCompare(b));
  return r;
}

/** dropRoom removes a room and returns whether it was there. When it was the
 * open one, no room is open afterwards: the caller opens another. */
export function dropRoom(state, name) {
  if (!state.rooms.has(name)) return false;
  state.rooms.delete(name);
  state.order = state.order.filter((n) => n !== name);
  if (state.current === name) state.current = null;
  return true;
}

/**
 * syncRoomList makes the room list the server's list `names`: rooms not in it
 * go, new ones come (without messages yet). It returns the names added and
 * dropped, and, when the open room was dropped, `reopen`: the room to open
 * instead (the first remaining room that was there before, or null).
 */
export function syncRoomList(state, names) {
  const want = new Set(names);
  const dropped = [];
  let closed = false;
  for (const name of [...state.rooms.keys()]) {
    if (want.has(name)) continue;
    if (state.current === name) closed = true;
    dropRoom(state, name);
    dropped.push(name);
  }
  const reopen = closed ? state.order[0] || null : undefined;
  const added = [];
  for (const name of names) {
    if (state.rooms.has(name)) continue;
    addRoom(state, name);
    added.push(name);
  }
  if (state.current && !state.rooms.has(state.current)) state.current = null;
  return closed ? { added, dropped, reopen } : { added, dropped };
}

/**
 * openRoom makes name the open room (or none, when it is not a room of the
 * user) and marks it read. It returns the room, or null.
 */
export function openRoom(state, name) {
  state.current = name && state.rooms.has(name) ? name : null;
  const r = currentRoom(state);
  if (r) r.unread = 0;
  return r;
}

/** markRead clears a room's unread count and returns whether it changed. */
export function markRead(state, name) {
  const r = state.rooms.get(name);
  if (!r || !r.unread) return false;
  r.unread = 0;
  return true;
}

/** totalUnread is the sum of the unread counts of every room. */
export function totalUnread(state) {
  let n = 0;
  for (const r of state.rooms.values()) n += r.unread;
  return n;
}

/**
 * addMessages merges confirmed messages into a room (once per id, in id
 * order) and returns how many were new. An own message that carries the
 * clientMsgId of a pending one replaces it. With live, messages from others
 * in a room that is not open count as unread.
 */
export function addMessages(state, r, list, { live }) {
  const added = mergeMessages(r.messages, r.seen, list);
  if (added.length === 0) return 0;
  const me = state.me && state.me.userId;
  for (const m of added) {
    if (m.userId === me && m.clientMsgId) {
      r.pending = r.pending.filter((p) => p.cid !== m.clientMsgId);
    }
  }
  if (live && r.name !== state.current) {
    r.unread += added.filter((m) => m.userId !== me).length;
  }
  return added.length;
}

/**
 * latestPage merges the latest page of a room's history, asked with limit
 * page, and returns how many messages were new (with live, counted as unread
 * like live ones). A full page means there may be older messages.
 */
export function latestPage(state, r, msgs, page, { live }) {
  const added = addMessages(state, r, msgs, { live });
  r.loaded = true;
  r.hasOlder = msgs.length >= page;
  return added;
}

/** olderFrom returns the id to ask history for messages before, or null when
 * the room has no message to start from (then it has no older ones either). */
export function olderFrom(r) {
  const before = r.messages.length ? r.messages[0].id : undefined;
  if (!before) {
    r.hasOlder = false;
    return null;
  }
  return before;
}

/** olderPage merges a page of history before the oldest message, asked with limit page. */
export function olderPage(state, r, msgs, page) {
  addMessages(state, r, msgs, { live: false });
  r.hasOlder = msgs.length >= page;
}

/** isMessage says whether a server message event is one the page can show. */
export function isMessage(m) {
  return !!m && typeof m.room === 'string' && typeof m.id === 'string';
}

/**
 * receiveMessage applies a live message event. A message for a room the page
 * does not know means another tab of the user joined it (this socket is in it
 * too): the room is added and `newRoom` is true. The sender stops typing.
 */
export function receiveMessage(state, m) {
  let newRoom = false;
  let r = state.rooms.get(m.room);
  if (!r) {
    r = addRoom(state, m.room);
    newRoom = true;
  }
  addMessages(state, r, [m], { live: true });
  const wasTyping = r.typing.delete(m.userId);
  return { room: r, newRoom, wasTyping };
}

/** newPending returns an own message that waits for the server's answer. */
export function newPending(cid, text, ts) {
  return { cid, text, ts, status: 'queued', error: '', attempt: 0 };
}

/** addPending adds an own message to a room's pending ones. */
export function addPending(r, p) {
  r.pending.push(p);
}

/** sending marks a pending message as on its way and returns the number of this attempt. */
export function sending(p) {
  p.status = 'sending';
  p.error = '';
  return ++p.attempt;
}

/**
 * sendFailed records the failure of attempt (ignored when a later attempt
 * was made since): with lost (the connection went), the message waits for
 * the next one; otherwise it shows error, with Retry.
 */
export function sendFailed(p, attempt, { lost, error }) {
  if (p.attempt !== attempt) return;
  if (lost) p.status = 'queued';
  else {
    p.status = 'failed';
    p.error = error;
  }
}

/** discardPending removes a failed message the user deleted. */
export function discardPending(r, p) {
  r.pending = r.pending.filter((x) => x !== p);
}

/** confirmPending replaces a pending message by the message the server stored. */
export function confirmPending(state, r, p, message) {
  r.pending = r.pending.filter((x) => x !== p);
  addMessages(state, r, [message], { live: false });
}

/** queuedMessages lists the pending messages that wait for a connection, as [room, pending]. */
export function queuedMessages(state) {
  const out = [];
  for (const r of state.rooms.values()) for (const p of r.pending) if (p.status === 'queued') out.push([r, p]);
  return out;
}

/**
 * setTyping applies a typing notice and returns the room it changed, or null
 * when the page ignores it (its own, or a room the user is not in).
 */
export function setTyping(state, t) {
  if (state.me && t.userId === state.me.userId) return null;
  const r = state.rooms.get(t.room);
  if (!r) return null;
  if (t.typing) r.typing.set(t.userId, String(t.name || t.userId));
  else r.typing.delete(t.userId);
  return r;
}

/** endTyping removes a typing indicator that was not repeated in time. */
export function endTyping(r, userId) {
  r.typing.delete(userId);
}

/** typingNames lists who is typing in the open room. */
export function typingNames(state) {
  const r = currentRoom(state);
  return r ? [...r.typing.values()] : [];
}

/** setPresence replaces who is online in a room with a presence answer's users. */
export function setPresence(r, users) {
  r.presence.clear();
  for (const u of users) if (u && typeof u.userId === 'string') r.presence.set(u.userId, String(u.name || u.userId));
  r.presenceLoaded = true;
}

/**
 * applyPresence applies a presence event. Own "joined" and "left" events
 * come from another tab or device of the user: it returns the rooms to add
 * (already added here, their presence still to fetch) and the rooms to drop
 * (left to the caller, which opens another room when it was the open one).
 */
export function applyPresence(state, p) {
  const mine = !!state.me && p.userId === state.me.userId;
  const targets = typeof p.room === 'string' ? [p.room] : [...state.rooms.keys()];
  const added = [];
  const left = [];
  for (const name of targets) {
    const r = state.rooms.get(name);
    if (!r) {
      if (mine && p.event === 'joined') {
        addRoom(state, name);
        added.push(name);
      }
      continue;
    }
    if (mine && p.event === 'left') {
      left.push(name);
      continue;
    }
    if (p.event === 'joined' || p.event === 'online') r.presence.set(p.userId, String(p.name || p.userId));
    else if (p.event === 'left' || p.event === 'offline') {
      if (!mine || p.event === 'left') r.presence.delete(p.userId);
      r.typing.delete(p.userId);
    }
  }
  return { added, left };
}

/**
 * markDisconnected records, for every room, the last message seen, so that a
 * fresh session can fetch what came after; nobody is typing any more, and own
 * messages being sent wait for the next connection.
 */
export function markDisconnected(state) {
  for (const r of state.rooms.values()) {
    if (r.catchupFrom === undefined) r.catchupFrom = r.messages.length ? r.messages[r.messages.length - 1].id : null;
    r.typing.clear();
    for (const p of r.pending) if (p.status === 'sending') p.status = 'queued';
  }
}

/**
 * startSession applies the server's session event, which names the user and
 * every room this socket was put back in. It returns `kind`: "first" (the
 * first socket.io session of this page), "recovered" (socket.io replayed what was
 * missed: nothing to fetch) or "fresh" (a new session after a disconnect: the
 * caller catches up, see recovery.js), and `rooms`, what syncRoomList did.
 */
export function startSession(state, s) {
  const reconnect = state.hadSession;
  state.hadSession = true;
  state.me = { userId: String(s.userId), name: String(s.name || s.userId) };
  if (state.identity && state.identity.mode === 'dev' && state.identity.userId !== state.me.userId) {
    state.identity = { ...state.identity, userId: state.me.userId };
  }
  const names = Array.isArray(s.rooms) ? s.rooms.filter((r) => typeof r === 'string') : [];
  const rooms = syncRoomList(state, names);
  let kind = 'first';
  if (reconnect) kind = s.recovered ? 'recovered' : 'fresh';
  if (kind === 'recovered') for (const r of state.rooms.values()) r.catchupFrom = undefined;
  return { kind, rooms };
}

/** resetSession forgets the user and every room (signed out). */
export function resetSession(state) {
  state.rooms.clear();
  state.order = [];
  state.current = null;
  state.me = null;
  state.hadSession = false;
  state.identity = null;
}

/** nextRoom returns the room step places after (1) or before (-1) the open one, wrapping. */
export function nextRoom(state, step) {
  if (!state.order.length) return null;
  const at = state.order.indexOf(state.current);
  return state.order[(at + step + state.order.length) % state.order.length];
}
