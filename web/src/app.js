// The chatd web client: one page that speaks the chatd client protocol
// (socket.io v4) and shows rooms, messages, presence and typing. This file
// is the entry point and the wiring: it holds the one state object
// (state.js), answers server events and user actions by changing it through
// state.js, asks the server through connection.js, and has views.js and
// timeline.js draw the result. input.js turns the user's doings into actions.
import { connect, errorText, fail } from './connection.js';
import { devIdentity, forgetIdentity, lastRoom, loadIdentity, rememberRoom, saveIdentity } from './identity.js';
import { autosize, bindInput, draft, focusAfterLeave, focusComposer, setDraft } from './input.js';
import { catchUp, reconnectedText } from './recovery.js';
import * as S from './state.js';
import * as T from './timeline.js';
import * as V from './views.js';

const PAGE = 50; // messages per history page when scrolling back
const TYPING_SHOW_MS = 6000; // a typing indicator fades without a repeat, in milliseconds

const state = S.createState();
let conn = null; // the Connection while signed in
let stopTyping = () => {};
const typingTimers = new Map(); // "room\nuserId" -> the timer that fades a typing indicator
const bc = typeof BroadcastChannel === 'function' ? new BroadcastChannel('chatd') : null;

const actions = {
  signIn,
  signOut,
  openRoom,
  joinRoom,
  leaveRoom,
  send,
  loadOlder,
  reconcileRooms,
  typing: (room, on) => conn?.typing(room, on),
};

// ---------------------------------------------------------------- startup

main().catch((err) => {
  console.error(err);
  V.showFatal('chatd could not start this page: ' + (err && err.message ? err.message : String(err)));
});

async function main() {
  state.config = await loadConfig();
  V.showDevBanner(state.config.devInsecure);
  V.initViews({ openRoom });
  T.initTimeline({
    loadOlder,
    retry: (r, p) => {
      sendPending(r, p);
      T.renderMessages(state);
    },
    discard: (r, p) => {
      S.discardPending(r, p);
      T.renderMessages(state);
    },
  });
  ({ stopTyping } = bindInput(state, actions));
  bindTabs();
  const params = new URLSearchParams(location.search);
  const room = params.get('room');
  if (room !== null) {
    if (S.ROOM_RE.test(room) && !room.startsWith('user:')) state.wantRoom = room;
    else V.toast(`“${room}” is not a room name: use 1 to 64 of A-Z a-z 0-9 _ - . :`);
  }
  const deepName = params.get('name');
  if (state.config.authMode === 'dev' && deepName && deepName.trim()) {
    const identity = devIdentity(deepName);
    saveIdentity(identity);
    replaceURL();
    return signIn(identity);
  }
  if (deepName) replaceURL();
  const stored = loadIdentity();
  if (stored && stored.mode === state.config.authMode) return signIn(stored);
  V.showSignIn(state);
}

async function loadConfig() {
  const fallback = { ...S.DEFAULT_CONFIG };
  try {
    const res = await fetch('/chatd/config.json', { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!res.ok) return fallback;
    const c = await res.json();
    return {
      authMode: c.authMode === 'jwt' ? 'jwt' : 'dev',
      devInsecure: c.authMode !== 'jwt' && c.devInsecure === true,
      messageBytes: Number.isInteger(c.messageBytes) && c.messageBytes > 0 ? c.messageBytes : fallback.messageBytes,
      version: typeof c.version === 'string' ? c.version : '',
    };
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------- signing in and out

function signIn(identity) {
  state.identity = identity;
  V.showApp();
  setMe(identity.mode === 'dev' ? { userId: identity.userId, name: identity.name } : null);
  V.renderAll(state);
  open();
}

function signOut() {
  closeConnection();
  forgetIdentity();
  bc?.postMessage({ type: 'signout', userId: state.me?.userId });
  endSession();
  V.showSignIn(state);
}

function closeConnection() {
  if (conn) {
    conn.close();
    conn = null;
  }
}

function endSession() {
  for (const t of typingTimers.values()) clearTimeout(t);
  typingTimers.clear();
  S.resetSession(state);
  V.resetTitle();
}

function setMe(me) {
  state.me = me;
  V.renderMe(me);
}

function setConn(s, detail) {
  state.conn = s;
  state.connDetail = detail || '';
  V.showConn(state);
}

/** request sends one protocol request; signed out, it fails at once. */
function request(event, payload) {
  return conn ? conn.request(event, payload) : Promise.resolve(fail('unavailable', 'You are signed out.'));
}

// ---------------------------------------------------------------- the connection

function open() {
  const auth =
    state.identity.mode === 'jwt'
      ? { token: state.identity.token }
      : { userId: state.identity.userId, name: state.identity.name };
  setConn('connecting');
  conn = connect(auth, {
    connect() {
      // The session event follows; it says whether the session was recovered.
      if (state.conn !== 'connected') setConn('connecting', 'Signing in…');
    },
    session: onSession,
    disconnect(reason) {
      S.markDisconnected(state);
      clearTypingTimers(() => true);
      V.renderTyping(state);
      T.renderMessages(state);
      if (reason === 'io client disconnect') return;
      state.reconnectText = 'Connection lost. Reconnecting…';
      setConn('reconnecting', `Disconnected (${reason})`);
    },
    unauthorized() {
      conn = null;
      forgetIdentity();
      const msg =
        state.config.authMode === 'jwt'
          ? 'The server refused this token (wrong, expired or for another server). Paste a fresh one.'
          : 'The server refused this sign-in. Try another name.';
      endSession();
      V.showSignIn(state, msg);
    },
    connectError(err) {
      if (!state.hadSession) state.reconnectText = 'Can’t reach the server. Trying again…';
      setConn('reconnecting', err && err.message ? `Can’t reach the server (${err.message})` : '');
    },
    reconnectAttempt(n) {
      state.reconnectText = n > 1 ? `Connection lost. Reconnecting (attempt ${n})…` : 'Connection lost. Reconnecting…';
      setConn('reconnecting', state.connDetail);
    },
    message: onMessage,
    typing: onTyping,
    presence: onPresence,
    // A join or leave by this user on any tab or device: refresh the room list.
    membership: () => reconcileRooms(),
  });
}

async function onSession(s) {
  if (!s || typeof s !== 'object') return;
  // The server has put this socket back in every room of the user.
  const { kind, rooms } = S.startSession(state, s);
  V.renderMe(state.me);
  afterSync(rooms);

  setConn('connected');
  if (kind === 'first') {
    let name = state.wantRoom;
    state.wantRoom = null;
    if (name && !state.rooms.has(name)) {
      const res = await request('join', { room: name });
      if (res.ok) S.addRoom(state, name);
      else {
        V.toast(`Could not join #${name}: ${errorText(res)}`);
        name = null;
      }
    }
    if (!name) {
      const last = lastRoom();
      name = last && state.rooms.has(last) ? last : state.order[0] || null;
    }
    openRoom(name, { focus: !V.isNarrow() });
    for (const n of state.order) loadPresence(n);
  } else if (kind === 'recovered') {
    V.flash('recovered', 'Reconnected: your session was recovered and nothing was missed.');
    for (const n of state.order) loadPresence(n);
  } else {
    V.flash('catching-up', 'Reconnected: catching up on what you missed…', 0);
    const got = await catchUp(state, request, { loadLatest, dropRoom });
    V.renderAll(state);
    for (const n of state.order) loadPresence(n);
    V.flash('caught-up', reconnectedText(got));
  }
  flushPending();
  V.renderAll(state);
}

/** afterSync acts on what syncRoomList did: the open room went, another opens. */
function afterSync({ dropped, reopen }) {
  for (const name of dropped) clearTypingTimers((room) => room === name);
  if (reopen !== undefined) openRoom(reopen, { focus: false });
}

function flushPending() {
  if (!conn || !conn.connected) return;
  for (const [r, p] of S.queuedMessages(state)) sendPending(r, p);
}

// ---------------------------------------------------------------- server events

function onMessage(m) {
  if (!S.isMessage(m)) return;
  const { room: r, newRoom, wasTyping } = S.receiveMessage(state, m);
  // A new room: another tab of this user joined it, and this socket is in it too.
  if (newRoom) loadPresence(m.room);
  if (wasTyping) {
    clearTypingTimers((room, user) => room === r.name && user === m.userId);
    if (r.name === state.current) V.renderTyping(state);
  }
  V.renderRoomList(state);
  if (r.name === state.current) {
    const wasAtBottom = T.isAtBottom();
    T.renderMessages(state);
    if (!wasAtBottom && !(state.me && m.userId === state.me.userId)) T.showUnseen(1);
  }
  V.updateTitle(state);
}

function onTyping(t) {
  if (!t || typeof t.room !== 'string' || typeof t.userId !== 'string') return;
  const r = S.setTyping(state, t);
  if (!r) return;
  const key = r.name + '\n' + t.userId;
  clearTimeout(typingTimers.get(key));
  typingTimers.delete(key);
  if (t.typing) {
    typingTimers.set(key, setTimeout(() => {
      typingTimers.delete(key);
      S.endTyping(r, t.userId);
      if (r.name === state.current) V.renderTyping(state);
    }, TYPING_SHOW_MS));
  }
  if (r.name === state.current) V.renderTyping(state);
}

/** clearTypingTimers stops the fade timers of the (room, userId) pairs match picks. */
function clearTypingTimers(match) {
  for (const [key, timer] of typingTimers) {
    const [room, user] = key.split('\n');
    if (!match(room, user)) continue;
    clearTimeout(timer);
    typingTimers.delete(key);
  }
}

function onPresence(p) {
  if (!p || typeof p.userId !== 'string') return;
  const { added, left } = S.applyPresence(state, p);
  if (p.event === 'left' || p.event === 'offline') {
    clearTypingTimers((room, user) => user === p.userId && (typeof p.room !== 'string' || room === p.room));
  }
  for (const name of added) {
    // Another tab of this user joined a room.
    loadPresence(name);
    V.renderRoomList(state);
  }
  for (const name of left) dropRoom(name);
  V.renderPeople(state);
  V.renderTyping(state);
}

// ---------------------------------------------------------------- rooms

function dropRoom(name) {
  const wasOpen = state.current === name;
  if (!S.dropRoom(state, name)) return;
  clearTypingTimers((room) => room === name);
  if (wasOpen) openRoom(state.order[0] || null, { focus: false });
  V.renderAll(state);
}

/** joinRoom joins (or opens) a room and resolves with '' or why it failed. */
async function joinRoom(name) {
  if (state.rooms.has(name)) {
    openRoom(name, { focus: true });
    return '';
  }
  const res = await request('join', { room: name });
  if (!res.ok) return errorText(res);
  S.addRoom(state, name);
  loadPresence(name);
  openRoom(name, { focus: true });
  bc?.postMessage({ type: 'rooms', userId: state.me?.userId });
  return '';
}

async function leaveRoom(name) {
  if (!name) return;
  const res = await request('leave', { room: name });
  if (!res.ok) {
    V.toast(`Could not leave #${name}: ${errorText(res)}`);
    return;
  }
  dropRoom(name);
  bc?.postMessage({ type: 'rooms', userId: state.me?.userId });
  V.toast(`You left #${name}.`);
  focusAfterLeave(state);
}

function openRoom(name, { focus } = { focus: false }) {
  const prev = S.currentRoom(state);
  if (prev) prev.draft = draft();
  if (prev && prev.name !== name) stopTyping();
  const r = S.openRoom(state, name);
  if (r) {
    rememberRoom(r.name);
    bc?.postMessage({ type: 'read', userId: state.me?.userId, room: r.name });
    setDraft(r.draft);
    if (!r.loaded && !r.loading) loadLatest(r);
    if (!r.presenceLoaded) loadPresence(r.name);
  } else {
    setDraft('');
  }
  replaceURL();
  V.closeDrawers();
  T.clearMessages();
  V.renderAll(state);
  T.scrollToBottom();
  autosize();
  if (focus && r) focusComposer();
}

/** loadLatest fetches the latest page of a room's history and returns how
 * many messages were new; with live, those count as unread like live ones. */
async function loadLatest(r, { live } = { live: false }) {
  r.loading = true;
  T.renderMessages(state);
  const res = await request('history', { room: r.name, limit: PAGE });
  r.loading = false;
  if (!state.rooms.has(r.name)) return 0;
  if (!res.ok) {
    if (res.error && res.error.code === 'forbidden') {
      dropRoom(r.name);
      return 0;
    }
    V.toast(`Could not load #${r.name}: ${errorText(res)}`);
    T.renderMessages(state);
    return 0;
  }
  const added = S.latestPage(state, r, Array.isArray(res.messages) ? res.messages : [], PAGE, { live });
  if (r.name === state.current) {
    T.renderMessages(state);
    T.scrollToBottom();
    fillViewport();
  }
  return added;
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasOlder || !r.loaded) return;
  const before = S.olderFrom(r);
  if (!before) return;
  r.loadingOlder = true;
  T.renderMessages(state);
  const res = await request('history', { room: r.name, before, limit: PAGE });
  r.loadingOlder = false;
  if (!res.ok) {
    V.toast(`Could not load older messages: ${errorText(res)}`);
    T.renderMessages(state);
    return;
  }
  S.olderPage(state, r, Array.isArray(res.messages) ? res.messages : [], PAGE);
  if (r.name === state.current) {
    T.renderMessages(state);
    fillViewport();
  }
}

/** fillViewport loads older pages until the list can scroll, so that
 * scrolling back is always possible when there is more. */
function fillViewport() {
  const r = S.currentRoom(state);
  if (!r || !r.hasOlder || r.loadingOlder) return;
  if (!T.canScroll()) loadOlder(r);
}

async function loadPresence(name) {
  const res = await request('presence', { room: name });
  const r = state.rooms.get(name);
  if (!r || !res.ok || !Array.isArray(res.users)) return;
  S.setPresence(r, res.users);
  if (name === state.current) V.renderPeople(state);
}

async function reconcileRooms() {
  if (!conn || !conn.connected) return;
  const res = await request('rooms', {});
  if (!res.ok || !Array.isArray(res.rooms)) return;
  const sync = S.syncRoomList(state, res.rooms.filter((r) => typeof r === 'string'));
  afterSync(sync);
  for (const name of sync.added) loadPresence(name);
  if (!state.current && state.order.length) openRoom(state.order[0]);
  V.renderAll(state);
}

// ---------------------------------------------------------------- sending

function newClientMsgId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return 'w' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function send(r, text) {
  const p = S.newPending(newClientMsgId(), text, Date.now());
  S.addPending(r, p);
  sendPending(r, p);
  T.renderMessages(state);
  T.scrollToBottom();
}

function sendPending(r, p) {
  if (!conn || !conn.connected) {
    p.status = 'queued';
    return;
  }
  const attempt = S.sending(p);
  request('message', { room: r.name, text: p.text, clientMsgId: p.cid }).then((res) => {
    const room = state.rooms.get(r.name);
    if (!room || !room.pending.includes(p)) return;
    if (res.ok && res.message) S.confirmPending(state, room, p, res.message);
    else {
      const lost = !!(res.error && res.error.code === 'unavailable' && !(conn && conn.connected));
      S.sendFailed(p, attempt, { lost, error: errorText(res) });
    }
    if (room.name === state.current) T.renderMessages(state);
  });
}

// ---------------------------------------------------------------- tabs of one user

function bindTabs() {
  bc?.addEventListener('message', (e) => {
    const d = e.data || {};
    if (!state.me || d.userId !== state.me.userId) return;
    if (d.type === 'read') {
      if (S.markRead(state, d.room)) {
        V.renderRoomList(state);
        V.updateTitle(state);
      }
    } else if (d.type === 'rooms') {
      // Another tab joined or left a room: the server already moved this
      // socket too, so ask it for the list.
      reconcileRooms();
    } else if (d.type === 'signout' && conn) {
      closeConnection();
      endSession();
      V.showSignIn(state, 'You signed out in another tab.');
    }
  });
}

function replaceURL() {
  const url = new URL(location.href);
  url.searchParams.delete('name');
  if (state.current) url.searchParams.set('room', state.current);
  else if (!state.wantRoom) url.searchParams.delete('room');
  history.replaceState(null, '', url.pathname + url.search + url.hash);
}
