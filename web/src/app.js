// The chatd web client: one page that speaks the chatd client protocol
// (socket.io v4) and shows rooms, messages, presence and typing.
import { io } from 'socket.io-client';
import { $, h, icon, linkify } from './dom.js';
import { compareIds, mergeMessages } from './ids.js';

const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const PAGE = 50; // messages per history page when scrolling back
const CATCHUP_PAGE = 100; // messages per history page when catching up
const TYPING_REPEAT_MS = 2500; // how often "typing: true" is repeated while typing
const TYPING_IDLE_MS = 3000; // no key for this long ends "typing"
const TYPING_SHOW_MS = 6000; // a typing indicator fades without a repeat
const GROUP_MS = 5 * 60 * 1000; // messages closer than this group under one header
const ACK_TIMEOUT_MS = 15000; // a request without an answer by then has failed
const STORE_KEY = 'chatd.identity';
const LAST_ROOM_KEY = 'chatd.lastRoom';

const ui = {
  boot: $('boot'),
  signin: $('signin'),
  signinForm: $('signin-form'),
  signinName: $('signin-name'),
  signinToken: $('signin-token'),
  signinError: $('signin-error'),
  signinHint: $('signin-hint'),
  signinFoot: $('signin-foot'),
  fieldName: $('field-name'),
  fieldToken: $('field-token'),
  app: $('app'),
  sidebar: $('sidebar'),
  conn: $('conn'),
  connText: $('conn-text'),
  joinToggle: $('join-toggle'),
  joinForm: $('join-form'),
  joinInput: $('join-input'),
  joinError: $('join-error'),
  roomList: $('room-list'),
  meAvatar: $('me-avatar'),
  meName: $('me-name'),
  meId: $('me-id'),
  signout: $('signout'),
  menuBtn: $('menu-btn'),
  menuBadge: $('menu-badge'),
  sidebarClose: $('sidebar-close'),
  roomName: $('room-name'),
  roomNameText: $('room-name-text'),
  roomSub: $('room-sub'),
  roomActions: $('room-actions'),
  peopleBtn: $('people-btn'),
  peopleCount: $('people-count'),
  copyLink: $('copy-link'),
  leaveBtn: $('leave-btn'),
  banner: $('banner'),
  timeline: $('timeline'),
  messages: $('messages'),
  jump: $('jump'),
  jumpText: $('jump-text'),
  empty: $('empty'),
  emptyForm: $('empty-form'),
  emptyInput: $('empty-input'),
  emptyError: $('empty-error'),
  composer: $('composer'),
  input: $('message-input'),
  sendBtn: $('send-btn'),
  typing: $('typing'),
  charCount: $('char-count'),
  people: $('people'),
  peopleTitle: $('people-title'),
  peopleList: $('people-list'),
  peopleClose: $('people-close'),
  scrim: $('scrim'),
  toast: $('toast'),
};

const state = {
  config: { authMode: 'dev', messageBytes: 4096, version: '' },
  identity: null, // what we sign in with: {mode:'dev', name, userId} or {mode:'jwt', token}
  me: null, // {userId, name} from the server's session event
  socket: null,
  conn: 'connecting', // connecting | connected | reconnecting | offline
  hadSession: false, // a session event was seen on this socket before
  rooms: new Map(), // room name -> Room
  order: [], // room names in the sidebar's order
  current: null, // the open room's name
  wantRoom: null, // a room to join and open once connected (deep link)
  unseen: 0, // messages below the visible part of the open room
};

const bc = typeof BroadcastChannel === 'function' ? new BroadcastChannel('chatd') : null;

function newRoom(name) {
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
    typing: new Map(), // userId -> {name, timer}
    presence: new Map(), // userId -> name
    presenceLoaded: false,
    catchupFrom: undefined, // last id seen before a disconnect
    draft: '',
  };
}

// ---------------------------------------------------------------- startup

main().catch((err) => {
  console.error(err);
  showFatal('chatd could not start this page: ' + (err && err.message ? err.message : String(err)));
});

async function main() {
  state.config = await loadConfig();
  bindUI();
  const params = new URLSearchParams(location.search);
  const room = params.get('room');
  if (room !== null) {
    if (ROOM_RE.test(room) && !room.startsWith('user:')) state.wantRoom = room;
    else toast(`“${room}” is not a room name: use 1 to 64 of A-Z a-z 0-9 _ - . :`);
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
  showSignIn();
}

async function loadConfig() {
  const fallback = { authMode: 'dev', messageBytes: 4096, version: '' };
  try {
    const res = await fetch('/chatd/config.json', { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!res.ok) return fallback;
    const c = await res.json();
    return {
      authMode: c.authMode === 'jwt' ? 'jwt' : 'dev',
      messageBytes: Number.isInteger(c.messageBytes) && c.messageBytes > 0 ? c.messageBytes : fallback.messageBytes,
      version: typeof c.version === 'string' ? c.version : '',
    };
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------- identity

/** devIdentity derives a stable user id from a name, so every tab that signs
 * in as "Alice" is the same user ("alice"). */
function devIdentity(name) {
  const clean = name.trim().replace(/\s+/g, ' ').slice(0, 64);
  const userId = clean.toLowerCase().replace(/\s/g, '-');
  return { mode: 'dev', name: clean, userId };
}

function loadIdentity() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    if (v && v.mode === 'dev' && typeof v.name === 'string' && v.name) return devIdentity(v.name);
    if (v && v.mode === 'jwt' && typeof v.token === 'string' && v.token) return { mode: 'jwt', token: v.token };
  } catch {
    // A broken entry is the same as none.
  }
  return null;
}

function saveIdentity(identity) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(identity));
  } catch {
    // Private mode without storage: the user signs in again next time.
  }
}

function forgetIdentity() {
  try {
    localStorage.removeItem(STORE_KEY);
  } catch {
    // Nothing to forget.
  }
}

function showSignIn(error = '') {
  ui.boot.hidden = true;
  ui.app.hidden = true;
  ui.signin.hidden = false;
  const jwt = state.config.authMode === 'jwt';
  ui.fieldName.hidden = jwt;
  ui.fieldToken.hidden = !jwt;
  ui.signinHint.textContent = jwt
    ? 'This server checks who you are with a token. Paste the token your team gave you.'
    : 'Pick the name others will see. Open the same name in another tab or device to stay in step.';
  ui.signinFoot.textContent = state.wantRoom ? `You will join #${state.wantRoom} next.` : '';
  ui.signinError.textContent = error;
  (jwt ? ui.signinToken : ui.signinName).focus();
}

function onSignInSubmit(e) {
  e.preventDefault();
  if (state.config.authMode === 'jwt') {
    const token = ui.signinToken.value.trim();
    if (!token) {
      ui.signinError.textContent = 'Paste a token to continue.';
      ui.signinToken.focus();
      return;
    }
    const identity = { mode: 'jwt', token };
    saveIdentity(identity);
    signIn(identity);
    return;
  }
  const name = ui.signinName.value.trim();
  if (!name) {
    ui.signinError.textContent = 'Type a name to continue.';
    ui.signinName.focus();
    return;
  }
  const identity = devIdentity(name);
  saveIdentity(identity);
  signIn(identity);
}

function signIn(identity) {
  state.identity = identity;
  ui.signin.hidden = true;
  ui.boot.hidden = true;
  ui.app.hidden = false;
  if (identity.mode === 'dev') setMe({ userId: identity.userId, name: identity.name });
  else setMe(null);
  renderAll();
  connect();
}

function signOut() {
  if (state.socket) {
    state.socket.removeAllListeners();
    state.socket.io.removeAllListeners();
    state.socket.disconnect();
    state.socket = null;
  }
  forgetIdentity();
  bc?.postMessage({ type: 'signout', userId: state.me?.userId });
  resetSession();
  showSignIn();
}

function resetSession() {
  for (const r of state.rooms.values()) for (const t of r.typing.values()) clearTimeout(t.timer);
  state.rooms.clear();
  state.order = [];
  state.current = null;
  state.me = null;
  state.hadSession = false;
  state.identity = null;
  document.title = 'chatd';
}

function setMe(me) {
  state.me = me;
  ui.meName.textContent = me ? me.name : '';
  ui.meId.textContent = me ? '@' + me.userId : '';
  fillAvatar(ui.meAvatar, me ? me.userId : '?', me ? me.name : '?');
}

// ---------------------------------------------------------------- socket

function connect() {
  const auth =
    state.identity.mode === 'jwt'
      ? { token: state.identity.token }
      : { userId: state.identity.userId, name: state.identity.name };
  setConn('connecting');
  const socket = io(location.origin, { auth, reconnectionDelayMax: 5000 });
  state.socket = socket;

  socket.on('connect', () => {
    // The session event follows; it says whether the session was recovered.
    if (state.conn !== 'connected') setConn('connecting', 'Signing in…');
  });
  socket.on('session', onSession);
  socket.on('disconnect', (reason) => {
    markDisconnected();
    if (reason === 'io client disconnect') return;
    reconnectText = 'Connection lost. Reconnecting…';
    setConn('reconnecting', `Disconnected (${reason})`);
    if (reason === 'io server disconnect') {
      // The server let us go (for example while it drains): come back by ourselves.
      setTimeout(() => state.socket === socket && !socket.connected && socket.connect(), 500 + Math.random() * 1500);
    }
  });
  socket.on('connect_error', (err) => {
    if (err && err.message === 'unauthorized') {
      socket.removeAllListeners();
      socket.io.removeAllListeners();
      socket.disconnect();
      state.socket = null;
      forgetIdentity();
      const msg =
        state.config.authMode === 'jwt'
          ? 'The server refused this token (wrong, expired or for another server). Paste a fresh one.'
          : 'The server refused this sign-in. Try another name.';
      resetSession();
      showSignIn(msg);
      return;
    }
    if (!state.hadSession) reconnectText = 'Can’t reach the server. Trying again…';
    setConn('reconnecting', err && err.message ? `Can’t reach the server (${err.message})` : '');
    if (!socket.active) {
      // A refusal that socket.io does not retry by itself.
      setTimeout(() => state.socket === socket && !socket.connected && socket.connect(), 2000 + Math.random() * 2000);
    }
  });
  socket.io.on('reconnect_attempt', (n) => {
    reconnectText = n > 1 ? `Connection lost. Reconnecting (attempt ${n})…` : 'Connection lost. Reconnecting…';
    setConn('reconnecting', connDetail);
  });

  socket.on('message', onMessage);
  socket.on('typing', onTyping);
  socket.on('presence', onPresence);
  // A join or leave by this user on any tab or device: refresh the room list.
  socket.on('membership', () => reconcileRooms());
}

/** request sends one protocol request and resolves with its answer, which
 * is always an object: {ok: true, ...} or {ok: false, error: {code, message}}. */
function request(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
  const socket = state.socket;
  if (!socket) return Promise.resolve(fail('unavailable', 'You are signed out.'));
  return new Promise((resolve) => {
    socket.timeout(timeoutMs).emit(event, payload, (err, res) => {
      if (err) resolve(fail('unavailable', 'The server did not answer in time. Check your connection.'));
      else if (!res || typeof res !== 'object') resolve(fail('internal', 'The server sent an answer this page does not understand.'));
      else resolve(res);
    });
  });
}

function fail(code, message) {
  return { ok: false, error: { code, message } };
}

function errorText(res) {
  return (res && res.error && res.error.message) || 'Something went wrong.';
}

function markDisconnected() {
  for (const r of state.rooms.values()) {
    // Remember where each room stood, so a fresh session can catch up from there.
    if (r.catchupFrom === undefined) r.catchupFrom = r.messages.length ? r.messages[r.messages.length - 1].id : null;
    for (const t of r.typing.values()) clearTimeout(t.timer);
    r.typing.clear();
    for (const p of r.pending) if (p.status === 'sending') p.status = 'queued';
  }
  renderTyping();
  renderMessages();
}

async function onSession(s) {
  if (!s || typeof s !== 'object') return;
  const reconnect = state.hadSession;
  state.hadSession = true;
  setMe({ userId: String(s.userId), name: String(s.name || s.userId) });
  if (state.identity && state.identity.mode === 'dev' && state.identity.userId !== state.me.userId) {
    state.identity = { ...state.identity, userId: state.me.userId };
  }

  // The server has put this socket back in every room of the user.
  const serverRooms = Array.isArray(s.rooms) ? s.rooms.filter((r) => typeof r === 'string') : [];
  syncRoomList(serverRooms);

  if (!reconnect) {
    setConn('connected');
    let open = state.wantRoom;
    state.wantRoom = null;
    if (open && !state.rooms.has(open)) {
      const res = await request('join', { room: open });
      if (res.ok) addRoom(open);
      else {
        toast(`Could not join #${open}: ${errorText(res)}`);
        open = null;
      }
    }
    if (!open) {
      const last = safeGet(LAST_ROOM_KEY);
      open = last && state.rooms.has(last) ? last : state.order[0] || null;
    }
    openRoom(open, { focus: !isNarrow() });
    for (const name of state.order) loadPresence(name);
  } else if (s.recovered) {
    for (const r of state.rooms.values()) r.catchupFrom = undefined;
    setConn('connected');
    flash('recovered', 'Reconnected: your session was recovered and nothing was missed.');
    for (const name of state.order) loadPresence(name);
  } else {
    setConn('connected');
    flash('catching-up', 'Reconnected: catching up on what you missed…', 0);
    const got = await catchUp();
    for (const name of state.order) loadPresence(name);
    flash('caught-up', got > 0 ? `Reconnected: caught up on ${got} message${got === 1 ? '' : 's'}.` : 'Reconnected: you are up to date.');
  }
  flushPending();
  renderAll();
}

/** catchUp fetches, for every room, the messages after the last one this page
 * saw before the connection broke, with one `sync` request for all rooms (and
 * another for the rooms that answered `more`), and returns how many were new. */
async function catchUp() {
  let total = 0;
  let want = {};
  const latest = [];
  for (const r of state.rooms.values()) {
    const after = r.catchupFrom;
    r.catchupFrom = undefined;
    if (after === undefined || after === null) {
      // Nothing seen in this room yet: its latest page is what was missed.
      if (r.loaded || r.name === state.current) latest.push(r);
    } else want[r.name] = after;
  }
  for (let round = 0; round < 100 && Object.keys(want).length > 0; round++) {
    const res = await request('sync', { rooms: want, limit: CATCHUP_PAGE });
    if (!res.ok || !res.rooms || typeof res.rooms !== 'object') {
      // Try again from here after the next reconnect (an earlier point is
      // always safe: messages merge by id).
      for (const [name, after] of Object.entries(want)) {
        const r = state.rooms.get(name);
        if (r) r.catchupFrom = after;
      }
      break;
    }
    const next = {};
    for (const [name, after] of Object.entries(want)) {
      const r = state.rooms.get(name);
      const part = res.rooms[name];
      if (!r || !part || typeof part !== 'object') continue;
      if (part.error) {
        if (part.error.code === 'forbidden') dropRoom(name);
        else r.catchupFrom = after;
        continue;
      }
      const msgs = Array.isArray(part.messages) ? part.messages : [];
      if (part.gap) r.gap = true;
      total += addMessages(r, msgs, { live: true });
      if (part.more) next[name] = msgs.length ? msgs[msgs.length - 1].id : after;
    }
    want = next;
  }
  for (const r of latest) total += await loadLatest(r, { live: r.loaded });
  renderAll();
  return total;
}

function flushPending() {
  if (!state.socket || !state.socket.connected) return;
  for (const r of state.rooms.values()) {
    for (const p of r.pending) if (p.status === 'queued') sendPending(r, p);
  }
}

// ---------------------------------------------------------------- server events

function onMessage(m) {
  if (!m || typeof m.room !== 'string' || typeof m.id !== 'string') return;
  let r = state.rooms.get(m.room);
  if (!r) {
    // Another tab of this user joined the room: this socket is in it too.
    r = addRoom(m.room);
    loadPresence(m.room);
  }
  addMessages(r, [m], { live: true });
  const t = r.typing.get(m.userId);
  if (t) {
    clearTimeout(t.timer);
    r.typing.delete(m.userId);
    if (r.name === state.current) renderTyping();
  }
  renderRoomList();
  if (r.name === state.current) {
    const wasAtBottom = isAtBottom();
    renderMessages();
    if (!wasAtBottom && !(state.me && m.userId === state.me.userId)) showUnseen(1);
  }
  updateTitle();
}

/** addMessages merges confirmed messages into a room and returns how many
 * were new. Live ones from others in a room that is not open count as unread. */
function addMessages(r, list, { live }) {
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

function onTyping(t) {
  if (!t || typeof t.room !== 'string' || typeof t.userId !== 'string') return;
  if (state.me && t.userId === state.me.userId) return;
  const r = state.rooms.get(t.room);
  if (!r) return;
  const old = r.typing.get(t.userId);
  if (old) clearTimeout(old.timer);
  if (t.typing) {
    const timer = setTimeout(() => {
      r.typing.delete(t.userId);
      if (r.name === state.current) renderTyping();
    }, TYPING_SHOW_MS);
    r.typing.set(t.userId, { name: String(t.name || t.userId), timer });
  } else {
    r.typing.delete(t.userId);
  }
  if (r.name === state.current) renderTyping();
}

function onPresence(p) {
  if (!p || typeof p.userId !== 'string') return;
  const mine = state.me && p.userId === state.me.userId;
  const targets = typeof p.room === 'string' ? [p.room] : [...state.rooms.keys()];
  for (const name of targets) {
    let r = state.rooms.get(name);
    if (!r) {
      if (mine && p.event === 'joined') {
        // Another tab of this user joined a room.
        r = addRoom(name);
        loadPresence(name);
        renderRoomList();
      }
      continue;
    }
    if (mine && p.event === 'left') {
      dropRoom(name);
      continue;
    }
    if (p.event === 'joined' || p.event === 'online') r.presence.set(p.userId, String(p.name || p.userId));
    else if (p.event === 'left' || p.event === 'offline') {
      if (!mine || p.event === 'left') r.presence.delete(p.userId);
      const t = r.typing.get(p.userId);
      if (t) {
        clearTimeout(t.timer);
        r.typing.delete(p.userId);
      }
    }
  }
  renderPeople();
  renderTyping();
}

// ---------------------------------------------------------------- rooms

function addRoom(name) {
  let r = state.rooms.get(name);
  if (r) return r;
  r = newRoom(name);
  state.rooms.set(name, r);
  state.order.push(name);
  state.order.sort((a, b) => a.localeCompare(b));
  return r;
}

function dropRoom(name) {
  const r = state.rooms.get(name);
  if (!r) return;
  for (const t of r.typing.values()) clearTimeout(t.timer);
  state.rooms.delete(name);
  state.order = state.order.filter((n) => n !== name);
  if (state.current === name) {
    state.current = null;
    openRoom(state.order[0] || null, { focus: false });
  }
  renderAll();
}

function syncRoomList(names) {
  const want = new Set(names);
  for (const name of [...state.rooms.keys()]) if (!want.has(name)) dropRoom(name);
  for (const name of names) addRoom(name);
  if (state.current && !state.rooms.has(state.current)) state.current = null;
}

async function joinRoom(input, errorEl) {
  const name = input.value.trim().replace(/^#/, '');
  errorEl.textContent = '';
  if (!ROOM_RE.test(name)) {
    errorEl.textContent = 'Use 1 to 64 letters, digits or _ - . :';
    input.focus();
    return false;
  }
  if (name.startsWith('user:')) {
    errorEl.textContent = 'Names starting with “user:” are reserved.';
    input.focus();
    return false;
  }
  if (state.rooms.has(name)) {
    input.value = '';
    openRoom(name, { focus: true });
    return true;
  }
  const res = await request('join', { room: name });
  if (!res.ok) {
    errorEl.textContent = errorText(res);
    input.focus();
    return false;
  }
  input.value = '';
  addRoom(name);
  loadPresence(name);
  openRoom(name, { focus: true });
  bc?.postMessage({ type: 'rooms', userId: state.me?.userId });
  return true;
}

async function leaveRoom(name) {
  if (!name) return;
  const res = await request('leave', { room: name });
  if (!res.ok) {
    toast(`Could not leave #${name}: ${errorText(res)}`);
    return;
  }
  dropRoom(name);
  bc?.postMessage({ type: 'rooms', userId: state.me?.userId });
  toast(`You left #${name}.`);
  (state.current ? ui.input : ui.emptyInput).focus();
}

function openRoom(name, { focus } = { focus: false }) {
  const prev = state.current ? state.rooms.get(state.current) : null;
  if (prev) prev.draft = ui.input.value;
  if (prev && prev.name !== name) stopTyping();
  state.current = name && state.rooms.has(name) ? name : null;
  const r = currentRoom();
  state.unseen = 0;
  if (r) {
    r.unread = 0;
    safeSet(LAST_ROOM_KEY, r.name);
    bc?.postMessage({ type: 'read', userId: state.me?.userId, room: r.name });
    ui.input.value = r.draft;
    if (!r.loaded && !r.loading) loadLatest(r);
    if (!r.presenceLoaded) loadPresence(r.name);
  } else {
    ui.input.value = '';
  }
  replaceURL();
  closeDrawers();
  ui.messages.replaceChildren();
  renderAll();
  scrollToBottom();
  autosize();
  if (focus && r) ui.input.focus();
}

function currentRoom() {
  return state.current ? state.rooms.get(state.current) || null : null;
}

/** loadLatest fetches the latest page of a room's history and returns how
 * many messages were new; with live, those count as unread like live ones. */
async function loadLatest(r, { live } = { live: false }) {
  r.loading = true;
  renderMessages();
  const res = await request('history', { room: r.name, limit: PAGE });
  r.loading = false;
  if (!state.rooms.has(r.name)) return 0;
  if (!res.ok) {
    if (res.error && res.error.code === 'forbidden') {
      dropRoom(r.name);
      return 0;
    }
    toast(`Could not load #${r.name}: ${errorText(res)}`);
    renderMessages();
    return 0;
  }
  const msgs = Array.isArray(res.messages) ? res.messages : [];
  const added = addMessages(r, msgs, { live });
  r.loaded = true;
  r.hasOlder = msgs.length >= PAGE;
  if (r.name === state.current) {
    renderMessages();
    scrollToBottom();
    fillViewport();
  }
  return added;
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasOlder || !r.loaded) return;
  const before = r.messages.length ? r.messages[0].id : undefined;
  if (!before) {
    r.hasOlder = false;
    return;
  }
  r.loadingOlder = true;
  renderMessages();
  const res = await request('history', { room: r.name, before, limit: PAGE });
  r.loadingOlder = false;
  if (!res.ok) {
    toast(`Could not load older messages: ${errorText(res)}`);
    renderMessages();
    return;
  }
  const msgs = Array.isArray(res.messages) ? res.messages : [];
  addMessages(r, msgs, { live: false });
  r.hasOlder = msgs.length >= PAGE;
  if (r.name === state.current) {
    renderMessages();
    fillViewport();
  }
}

/** fillViewport loads older pages until the list can scroll, so that
 * scrolling back is always possible when there is more. */
function fillViewport() {
  const r = currentRoom();
  if (!r || !r.hasOlder || r.loadingOlder) return;
  const el = ui.messages;
  if (el.scrollHeight <= el.clientHeight + 8) loadOlder(r);
}

async function loadPresence(name) {
  const res = await request('presence', { room: name });
  const r = state.rooms.get(name);
  if (!r || !res.ok || !Array.isArray(res.users)) return;
  r.presence.clear();
  for (const u of res.users) if (u && typeof u.userId === 'string') r.presence.set(u.userId, String(u.name || u.userId));
  r.presenceLoaded = true;
  if (name === state.current) renderPeople();
}

async function reconcileRooms() {
  if (!state.socket || !state.socket.connected) return;
  const res = await request('rooms', {});
  if (!res.ok || !Array.isArray(res.rooms)) return;
  const before = new Set(state.rooms.keys());
  syncRoomList(res.rooms.filter((r) => typeof r === 'string'));
  for (const name of state.rooms.keys()) if (!before.has(name)) loadPresence(name);
  if (!state.current && state.order.length) openRoom(state.order[0]);
  renderAll();
}

// ---------------------------------------------------------------- sending

function newClientMsgId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return 'w' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const encoder = new TextEncoder();

function onSend(e) {
  if (e) e.preventDefault();
  const r = currentRoom();
  if (!r) return;
  const text = ui.input.value.replace(/^\s*\n/, '').replace(/\s+$/, '');
  if (!text.trim()) return;
  const bytes = encoder.encode(text).length;
  if (bytes > state.config.messageBytes) {
    toast(`This message is ${bytes} bytes; the limit is ${state.config.messageBytes}. Shorten it or split it.`);
    return;
  }
  const p = { cid: newClientMsgId(), text, ts: Date.now(), status: 'queued', error: '', attempt: 0 };
  r.pending.push(p);
  ui.input.value = '';
  r.draft = '';
  autosize();
  updateCount();
  stopTyping();
  sendPending(r, p);
  renderMessages();
  scrollToBottom();
}

function sendPending(r, p) {
  if (!state.socket || !state.socket.connected) {
    p.status = 'queued';
    return;
  }
  p.status = 'sending';
  p.error = '';
  const attempt = ++p.attempt;
  request('message', { room: r.name, text: p.text, clientMsgId: p.cid }).then((res) => {
    const room = state.rooms.get(r.name);
    if (!room || !room.pending.includes(p)) return;
    if (res.ok && res.message) {
      room.pending = room.pending.filter((x) => x !== p);
      addMessages(room, [res.message], { live: false });
    } else if (p.attempt === attempt) {
      const lost = res.error && res.error.code === 'unavailable' && !(state.socket && state.socket.connected);
      if (lost) p.status = 'queued';
      else {
        p.status = 'failed';
        p.error = errorText(res);
      }
    }
    if (room.name === state.current) renderMessages();
  });
}

// Typing: "typing: true" is repeated while keys are pressed and
// "typing: false" follows a pause, a send or a room switch.
let typingRoom = null;
let typingSentAt = 0;
let typingIdle = 0;

function onInput() {
  autosize();
  updateCount();
  const r = currentRoom();
  if (!r) return;
  r.draft = ui.input.value;
  if (!ui.input.value.trim()) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (typingRoom !== r.name || now - typingSentAt > TYPING_REPEAT_MS) {
    if (typingRoom && typingRoom !== r.name) stopTyping();
    state.socket?.volatile.emit('typing', { room: r.name, typing: true });
    typingRoom = r.name;
    typingSentAt = now;
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typingIdle);
  if (typingRoom && state.rooms.has(typingRoom)) state.socket?.volatile.emit('typing', { room: typingRoom, typing: false });
  typingRoom = null;
  typingSentAt = 0;
}

// ---------------------------------------------------------------- rendering

function renderAll() {
  renderConn();
  renderRoomList();
  renderHeader();
  renderMessages();
  renderTyping();
  renderPeople();
  updateTitle();
}

const CONN_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

let connDetail = ''; // the technical reason, shown as the status's tooltip
let reconnectText = 'Connection lost. Reconnecting…';

function setConn(s, detail) {
  state.conn = s;
  connDetail = detail || '';
  renderConn();
  document.body.dataset.conn = s;
  if (s === 'reconnecting') {
    showBanner('reconnecting', reconnectText, true);
  } else if (s === 'connected' && ui.banner.dataset.state === 'reconnecting') {
    hideBanner();
  }
  renderComposerState();
}

/** renderSub writes the line under the room name: who is online, or the
 * connection state while it is not connected (the sidebar is hidden on phones). */
function renderSub() {
  const r = currentRoom();
  if (!r) {
    ui.roomSub.replaceChildren();
    return;
  }
  const online = r.presence.size;
  const text = state.conn === 'connected' ? `${online} online` : CONN_TEXT[state.conn];
  ui.roomSub.dataset.state = state.conn;
  ui.roomSub.replaceChildren(h('span', { class: 'sub-dot', 'aria-hidden': 'true' }), h('span', { text }));
}

function renderConn() {
  renderSub();
  ui.conn.dataset.state = state.conn;
  ui.connText.textContent = state.conn === 'reconnecting' ? 'Reconnecting…' : CONN_TEXT[state.conn];
  ui.conn.title = connDetail || CONN_TEXT[state.conn];
  ui.conn.setAttribute('aria-label', 'Connection: ' + (connDetail || CONN_TEXT[state.conn]));
}

let bannerTimer = 0;

function showBanner(kind, text, sticky) {
  clearTimeout(bannerTimer);
  ui.banner.dataset.state = kind;
  ui.banner.replaceChildren(h('span', { class: 'banner-dot', 'aria-hidden': 'true' }), h('span', { text }));
  ui.banner.hidden = false;
  if (!sticky) bannerTimer = setTimeout(hideBanner, 4000);
}

function hideBanner() {
  clearTimeout(bannerTimer);
  ui.banner.hidden = true;
  ui.banner.dataset.state = '';
}

/** flash shows a connection outcome for a few seconds (ms = 0 keeps it). */
function flash(kind, text, ms = 4000) {
  ui.conn.dataset.last = kind;
  showBanner(kind, text, ms === 0);
}

function renderRoomList() {
  const items = state.order.map((name) => {
    const r = state.rooms.get(name);
    const active = name === state.current;
    const badge = r.unread > 0 ? h('span', { class: 'badge', 'data-testid': 'unread', text: r.unread > 99 ? '99+' : String(r.unread) }) : null;
    const label = `${name}${r.unread ? `, ${r.unread} unread` : ''}`;
    return h(
      'li',
      null,
      h(
        'button',
        {
          type: 'button',
          class: 'room' + (active ? ' active' : '') + (r.unread ? ' has-unread' : ''),
          'aria-current': active ? 'page' : null,
          'aria-label': label,
          'data-room': name,
          onclick: () => openRoom(name, { focus: !isNarrow() }),
        },
        icon('hash', 'room-hash'),
        h('span', { class: 'room-name', text: name }),
        badge,
      ),
    );
  });
  if (items.length === 0) items.push(h('li', { class: 'room-none muted', text: 'No rooms yet' }));
  ui.roomList.replaceChildren(...items);
  const total = totalUnread();
  ui.menuBadge.hidden = total === 0;
  ui.menuBadge.textContent = total > 99 ? '99+' : String(total);
  ui.menuBtn.setAttribute('aria-label', total ? `Open rooms (${total} unread)` : 'Open rooms');
}

function totalUnread() {
  let n = 0;
  for (const r of state.rooms.values()) n += r.unread;
  return n;
}

function updateTitle() {
  const n = totalUnread();
  const room = state.current ? `#${state.current} · ` : '';
  document.title = `${n ? `(${n}) ` : ''}${room}chatd`;
}

function renderHeader() {
  const r = currentRoom();
  ui.roomActions.hidden = !r;
  ui.composer.hidden = !r;
  ui.empty.hidden = !!r || !state.hadSession;
  ui.messages.hidden = !r;
  ui.roomNameText.textContent = r ? r.name : state.me ? `Welcome, ${state.me.name}` : '';
  ui.roomName.classList.toggle('no-room', !r);
  ui.input.placeholder = r ? `Message #${r.name}` : 'Message';
  renderComposerState();
}

function renderComposerState() {
  const r = currentRoom();
  ui.sendBtn.disabled = !r;
  ui.input.disabled = !r;
}

function renderPeople() {
  const r = currentRoom();
  const users = r ? [...r.presence.entries()].map(([userId, name]) => ({ userId, name })) : [];
  const me = state.me && state.me.userId;
  users.sort((a, b) => (a.userId === me ? -1 : b.userId === me ? 1 : a.name.localeCompare(b.name)));
  ui.peopleCount.textContent = String(users.length);
  ui.peopleBtn.setAttribute('aria-label', `Who is online: ${users.length}`);
  ui.peopleTitle.textContent = r ? `Online · ${users.length}` : 'Online';
  renderSub();
  if (!r) {
    ui.peopleList.replaceChildren(h('li', { class: 'people-none muted', text: 'Open a room to see who is online.' }));
    return;
  }
  ui.peopleList.replaceChildren(
    ...users.map((u) =>
      h(
        'li',
        { class: 'person', 'data-user': u.userId },
        avatar(u.userId, u.name, 'avatar-sm'),
        h('span', { class: 'person-name', text: u.name }),
        u.userId === me ? h('span', { class: 'you', text: 'you' }) : null,
      ),
    ),
  );
}

function renderTyping() {
  const r = currentRoom();
  const names = r ? [...r.typing.values()].map((t) => t.name) : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing`;
  else if (names.length > 2) text = `${names.length} people are typing`;
  if (!text) {
    ui.typing.replaceChildren();
    ui.typing.classList.remove('on');
    return;
  }
  ui.typing.classList.add('on');
  ui.typing.replaceChildren(
    h('span', { class: 'dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
    h('span', { class: 'typing-text', text: text + '…' }),
  );
}

// Messages are drawn with a keyed update: nodes that did not change stay in
// place, so text selection, focus and scroll position survive new messages.
const nodeCache = new Map(); // key -> {sig, el}

function renderMessages() {
  const r = currentRoom();
  const el = ui.messages;
  if (!r) {
    el.replaceChildren();
    nodeCache.clear();
    return;
  }
  const atBottom = isAtBottom();
  const anchor = atBottom ? null : findAnchor();

  const items = buildItems(r);
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

function isAtBottom() {
  const el = ui.messages;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
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

// stick is true while the list is scrolled to its end, so that a resize
// (window, keyboard, a growing message box) keeps the newest message in view.
let stick = true;

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  stick = true;
  state.unseen = 0;
  ui.jump.hidden = true;
}

/** showUnseen counts a new message from someone else that arrived below
 * the visible part of the list, and offers a jump to it. */
function showUnseen(n) {
  state.unseen += n;
  ui.jump.hidden = state.unseen === 0;
  ui.jumpText.textContent = state.unseen === 1 ? '1 new message' : `${state.unseen} new messages`;
}

function buildItems(r) {
  const items = [];
  if (r.loading && r.messages.length === 0) {
    items.push({ key: 'loading', sig: '', make: () => h('div', { class: 'loading', text: 'Loading messages…' }) });
  } else if (r.hasOlder && r.loaded) {
    items.push({
      key: 'older',
      sig: r.loadingOlder ? 'busy' : 'idle',
      make: () =>
        h('div', { class: 'older' }, r.loadingOlder
          ? h('span', { class: 'spinner', role: 'progressbar', 'aria-label': 'Loading older messages' })
          : h('button', { type: 'button', class: 'link-btn', onclick: () => loadOlder(r), text: 'Load older messages' })),
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
      items.push({ key: m.id, sig: `${grouped}|${p.status}|${p.error}`, make: () => messageNode(m, grouped, p, r) });
    } else {
      items.push({ key: 'm:' + m.id, sig: String(grouped), make: () => messageNode(m, grouped, null, r) });
    }
    prev = m;
  }
  return items;
}

function messageNode(m, grouped, pending, r) {
  const me = state.me && m.userId === state.me.userId;
  const ts = Number(m.ts) || Date.now();
  const time = h('time', { datetime: new Date(ts).toISOString(), title: fullTime(ts), text: shortTime(ts) });
  const text = h('div', { class: 'text' }, linkify(String(m.text ?? pending?.text ?? '')));
  const cls = ['msg'];
  if (grouped) cls.push('grouped');
  if (me) cls.push('own');
  if (pending) cls.push('pending', pending.status);
  const node = h(
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
  return node;
}

function pendingNote(p, r) {
  if (p.status === 'failed') {
    return h(
      'div',
      { class: 'note note-error', role: 'alert' },
      h('span', { text: `Not sent: ${p.error}` }),
      h('button', { type: 'button', class: 'link-btn', onclick: () => { sendPending(r, p); renderMessages(); }, text: 'Retry' }),
      h('button', {
        type: 'button',
        class: 'link-btn',
        onclick: () => {
          r.pending = r.pending.filter((x) => x !== p);
          renderMessages();
        },
        text: 'Delete',
      }),
    );
  }
  return h('div', { class: 'note', text: p.status === 'queued' ? 'Waiting for the connection…' : 'Sending…' });
}

function avatar(userId, name, cls) {
  const el = h('span', { class: 'avatar ' + cls, 'aria-hidden': 'true' });
  fillAvatar(el, userId, name);
  return el;
}

function fillAvatar(el, userId, name) {
  const words = String(name || '?').trim().split(/\s+/);
  const initials = (words.length > 1 ? words[0][0] + words[1][0] : String(name || '?').slice(0, 2)).toUpperCase();
  el.textContent = [...initials].slice(0, 2).join('');
  let hash = 0;
  for (const ch of String(userId)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  el.style.setProperty('--hue', String(hash % 360));
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

// ---------------------------------------------------------------- page behaviour

function bindUI() {
  ui.signinForm.addEventListener('submit', onSignInSubmit);
  ui.signinToken.addEventListener('keydown', (e) => {
    // A token is one line: Enter signs in.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.signinForm.requestSubmit();
    }
  });
  ui.signout.addEventListener('click', signOut);
  ui.composer.addEventListener('submit', onSend);
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      onSend();
    }
  });
  ui.input.addEventListener('input', onInput);
  ui.input.addEventListener('blur', () => stopTyping());

  ui.joinToggle.addEventListener('click', () => toggleJoin());
  ui.joinForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await joinRoom(ui.joinInput, ui.joinError)) toggleJoin(false);
  });
  ui.joinInput.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      toggleJoin(false);
    }
  });
  ui.emptyForm.addEventListener('submit', (e) => {
    e.preventDefault();
    joinRoom(ui.emptyInput, ui.emptyError);
  });

  ui.leaveBtn.addEventListener('click', () => leaveRoom(state.current));
  ui.copyLink.addEventListener('click', copyRoomLink);
  ui.menuBtn.addEventListener('click', () => openDrawer('sidebar'));
  ui.sidebarClose.addEventListener('click', closeDrawers);
  ui.peopleBtn.addEventListener('click', () => (document.body.dataset.drawer === 'people' ? closeDrawers() : openDrawer('people')));
  ui.peopleClose.addEventListener('click', closeDrawers);
  ui.scrim.addEventListener('click', closeDrawers);
  ui.jump.addEventListener('click', () => {
    scrollToBottom();
    ui.input.focus();
  });

  ui.messages.addEventListener('scroll', () => {
    const r = currentRoom();
    if (!r) return;
    if (ui.messages.scrollTop < 400) loadOlder(r);
    stick = isAtBottom();
    if (stick) {
      state.unseen = 0;
      ui.jump.hidden = true;
    }
  }, { passive: true });

  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.dataset.drawer) {
      closeDrawers();
      return;
    }
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown') && state.order.length) {
      e.preventDefault();
      const at = state.order.indexOf(state.current);
      const next = (at + (e.key === 'ArrowDown' ? 1 : -1) + state.order.length) % state.order.length;
      openRoom(state.order[next], { focus: true });
    }
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') reconcileRooms();
  });
  window.addEventListener('focus', () => reconcileRooms());
  window.addEventListener('resize', () => {
    if (!isNarrow() && document.body.dataset.drawer === 'sidebar') closeDrawers();
  });
  new ResizeObserver(() => {
    // Keep the newest message in view when the composer or window resizes.
    if (stick) scrollToBottom();
  }).observe(ui.messages);

  bc?.addEventListener('message', (e) => {
    const d = e.data || {};
    if (!state.me || d.userId !== state.me.userId) return;
    if (d.type === 'read') {
      const r = state.rooms.get(d.room);
      if (r && r.unread) {
        r.unread = 0;
        renderRoomList();
        updateTitle();
      }
    } else if (d.type === 'rooms') {
      // Another tab joined or left a room: the server already moved this
      // socket too, so ask it for the list.
      reconcileRooms();
    } else if (d.type === 'signout' && state.socket) {
      state.socket.removeAllListeners();
      state.socket.io.removeAllListeners();
      state.socket.disconnect();
      state.socket = null;
      resetSession();
      showSignIn('You signed out in another tab.');
    }
  });
}

function toggleJoin(open = ui.joinForm.hidden) {
  ui.joinForm.hidden = !open;
  ui.joinToggle.setAttribute('aria-expanded', String(open));
  ui.joinError.textContent = '';
  if (open) ui.joinInput.focus();
  else ui.joinToggle.focus();
}

function openDrawer(which) {
  document.body.dataset.drawer = which;
  ui.scrim.hidden = false;
  ui.menuBtn.setAttribute('aria-expanded', String(which === 'sidebar'));
  ui.peopleBtn.setAttribute('aria-expanded', String(which === 'people'));
  const target = which === 'sidebar' ? ui.sidebar.querySelector('.room.active') || ui.joinToggle : ui.peopleClose;
  target.focus();
}

function closeDrawers() {
  const was = document.body.dataset.drawer;
  delete document.body.dataset.drawer;
  ui.scrim.hidden = true;
  ui.menuBtn.setAttribute('aria-expanded', 'false');
  ui.peopleBtn.setAttribute('aria-expanded', 'false');
  if (was === 'sidebar' && isNarrow()) ui.menuBtn.focus();
  else if (was === 'people') ui.peopleBtn.focus();
}

function isNarrow() {
  return window.matchMedia('(max-width: 767px)').matches;
}

async function copyRoomLink() {
  if (!state.current) return;
  const url = `${location.origin}/?room=${encodeURIComponent(state.current)}`;
  try {
    await navigator.clipboard.writeText(url);
    toast('Link copied: ' + url);
  } catch {
    window.prompt('Copy this link to the room:', url);
  }
}

function replaceURL() {
  const url = new URL(location.href);
  url.searchParams.delete('name');
  if (state.current) url.searchParams.set('room', state.current);
  else if (!state.wantRoom) url.searchParams.delete('room');
  history.replaceState(null, '', url.pathname + url.search + url.hash);
}

function autosize() {
  const el = ui.input;
  el.style.height = 'auto';
  el.style.height = Math.min(el.scrollHeight, 200) + 'px';
}

function updateCount() {
  const bytes = encoder.encode(ui.input.value).length;
  const max = state.config.messageBytes;
  const show = bytes > max * 0.8;
  ui.charCount.textContent = show ? `${bytes} / ${max}` : '';
  ui.charCount.classList.toggle('over', bytes > max);
}

let toastTimer = 0;

function toast(text) {
  clearTimeout(toastTimer);
  ui.toast.textContent = text;
  ui.toast.classList.add('show');
  toastTimer = setTimeout(() => ui.toast.classList.remove('show'), 4000);
}

function showFatal(text) {
  ui.boot.hidden = true;
  ui.signin.hidden = false;
  ui.signinError.textContent = text;
}

function safeGet(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function safeSet(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // No storage: nothing to remember.
  }
}
