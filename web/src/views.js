// The views: everything the page shows, drawn from the state (state.js) and
// nothing else: the sign-in card, the connection status and banner, the room
// list with unread counts, the room header, who is online and typing, the
// tab's title, drawers and toasts. The conversation itself is timeline.js.
// Views change the DOM only; what a click means is an action from app.js.
import { h, icon } from './dom.js';
import { currentRoom, totalUnread, typingNames } from './state.js';
import { renderMessages } from './timeline.js';
import { fillAvatar, avatar, ui } from './ui.js';

const CONN_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

let actions = { openRoom() {} };
let bannerTimer = 0;
let toastTimer = 0;

/** initViews sets what the views' own buttons do: openRoom(name, {focus}). */
export function initViews(a) {
  actions = a;
}

/** renderAll draws every part of the signed-in page. */
export function renderAll(state) {
  renderConn(state);
  renderRoomList(state);
  renderHeader(state);
  renderMessages(state);
  renderTyping(state);
  renderPeople(state);
  updateTitle(state);
}

/** showSignIn shows the sign-in card for the server's auth mode, with an error if any. */
export function showSignIn(state, error = '') {
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

/** showApp replaces the sign-in card by the chat. */
export function showApp() {
  ui.signin.hidden = true;
  ui.boot.hidden = true;
  ui.app.hidden = false;
}

/** showFatal says the page could not start. */
export function showFatal(text) {
  ui.boot.hidden = true;
  ui.signin.hidden = false;
  ui.signinError.textContent = text;
}

/** renderMe draws who is signed in, at the bottom of the sidebar. */
export function renderMe(me) {
  ui.meName.textContent = me ? me.name : '';
  ui.meId.textContent = me ? '@' + me.userId : '';
  fillAvatar(ui.meAvatar, me ? me.userId : '?', me ? me.name : '?');
}

/** showConn draws a change of the connection state: status, banner, composer. */
export function showConn(state) {
  renderConn(state);
  document.body.dataset.conn = state.conn;
  if (state.conn === 'reconnecting') {
    showBanner('reconnecting', state.reconnectText, true);
  } else if (state.conn === 'connected' && ui.banner.dataset.state === 'reconnecting') {
    hideBanner();
  }
  renderComposerState(state);
}

/** renderSub writes the line under the room name: who is online, or the
 * connection state while it is not connected (the sidebar is hidden on phones). */
function renderSub(state) {
  const r = currentRoom(state);
  if (!r) {
    ui.roomSub.replaceChildren();
    return;
  }
  const online = r.presence.size;
  const text = state.conn === 'connected' ? `${online} online` : CONN_TEXT[state.conn];
  ui.roomSub.dataset.state = state.conn;
  ui.roomSub.replaceChildren(h('span', { class: 'sub-dot', 'aria-hidden': 'true' }), h('span', { text }));
}

function renderConn(state) {
  renderSub(state);
  const detail = state.connDetail;
  ui.conn.dataset.state = state.conn;
  ui.connText.textContent = state.conn === 'reconnecting' ? 'Reconnecting…' : CONN_TEXT[state.conn];
  ui.conn.title = detail || CONN_TEXT[state.conn];
  ui.conn.setAttribute('aria-label', 'Connection: ' + (detail || CONN_TEXT[state.conn]));
}

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

/** flash shows how a reconnect went (kind: recovered, catching-up, caught-up)
 * for ms milliseconds (0 keeps it until the next change). */
export function flash(kind, text, ms = 4000) {
  ui.conn.dataset.last = kind;
  showBanner(kind, text, ms === 0);
}

/** renderRoomList draws the sidebar's rooms with their unread counts, and the total on the menu button. */
export function renderRoomList(state) {
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
          onclick: () => actions.openRoom(name, { focus: !isNarrow() }),
        },
        icon('hash', 'room-hash'),
        h('span', { class: 'room-name', text: name }),
        badge,
      ),
    );
  });
  if (items.length === 0) items.push(h('li', { class: 'room-none muted', text: 'No rooms yet' }));
  ui.roomList.replaceChildren(...items);
  const total = totalUnread(state);
  ui.menuBadge.hidden = total === 0;
  ui.menuBadge.textContent = total > 99 ? '99+' : String(total);
  ui.menuBtn.setAttribute('aria-label', total ? `Open rooms (${total} unread)` : 'Open rooms');
}

/** updateTitle puts the total unread count and the open room in the tab's title. */
export function updateTitle(state) {
  const n = totalUnread(state);
  const room = state.current ? `#${state.current} · ` : '';
  document.title = `${n ? `(${n}) ` : ''}${room}chatd`;
}

/** resetTitle is the title of a signed-out page. */
export function resetTitle() {
  document.title = 'chatd';
}

function renderHeader(state) {
  const r = currentRoom(state);
  ui.roomActions.hidden = !r;
  ui.composer.hidden = !r;
  ui.empty.hidden = !!r || !state.hadSession;
  ui.messages.hidden = !r;
  ui.roomNameText.textContent = r ? r.name : state.me ? `Welcome, ${state.me.name}` : '';
  ui.roomName.classList.toggle('no-room', !r);
  ui.input.placeholder = r ? `Message #${r.name}` : 'Message';
  renderComposerState(state);
}

function renderComposerState(state) {
  const r = currentRoom(state);
  ui.sendBtn.disabled = !r;
  ui.input.disabled = !r;
}

/** renderPeople draws who is online in the open room, the user first. */
export function renderPeople(state) {
  const r = currentRoom(state);
  const users = r ? [...r.presence.entries()].map(([userId, name]) => ({ userId, name })) : [];
  const me = state.me && state.me.userId;
  users.sort((a, b) => (a.userId === me ? -1 : b.userId === me ? 1 : a.name.localeCompare(b.name)));
  ui.peopleCount.textContent = String(users.length);
  ui.peopleBtn.setAttribute('aria-label', `Who is online: ${users.length}`);
  ui.peopleTitle.textContent = r ? `Online · ${users.length}` : 'Online';
  renderSub(state);
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

/** renderTyping draws who is typing in the open room. */
export function renderTyping(state) {
  const names = typingNames(state);
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

/** toast shows a short notice for 4 seconds. */
export function toast(text) {
  clearTimeout(toastTimer);
  ui.toast.textContent = text;
  ui.toast.classList.add('show');
  toastTimer = setTimeout(() => ui.toast.classList.remove('show'), 4000);
}

/** toggleJoin opens or closes the sidebar's join field. */
export function toggleJoin(open = ui.joinForm.hidden) {
  ui.joinForm.hidden = !open;
  ui.joinToggle.setAttribute('aria-expanded', String(open));
  ui.joinError.textContent = '';
  if (open) ui.joinInput.focus();
  else ui.joinToggle.focus();
}

/** drawer is the open drawer ("sidebar" or "people"), or undefined. */
export function drawer() {
  return document.body.dataset.drawer;
}

/** openDrawer opens the rooms ("sidebar") or who is online ("people") as a drawer. */
export function openDrawer(which) {
  document.body.dataset.drawer = which;
  ui.scrim.hidden = false;
  ui.menuBtn.setAttribute('aria-expanded', String(which === 'sidebar'));
  ui.peopleBtn.setAttribute('aria-expanded', String(which === 'people'));
  const target = which === 'sidebar' ? ui.sidebar.querySelector('.room.active') || ui.joinToggle : ui.peopleClose;
  target.focus();
}

/** closeDrawers closes any drawer and gives the focus back to the button that opened it. */
export function closeDrawers() {
  const was = document.body.dataset.drawer;
  delete document.body.dataset.drawer;
  ui.scrim.hidden = true;
  ui.menuBtn.setAttribute('aria-expanded', 'false');
  ui.peopleBtn.setAttribute('aria-expanded', 'false');
  if (was === 'sidebar' && isNarrow()) ui.menuBtn.focus();
  else if (was === 'people') ui.peopleBtn.focus();
}

/** isNarrow says whether the rooms are a drawer (a phone's width). */
export function isNarrow() {
  return window.matchMedia('(max-width: 767px)').matches;
}

/** showDevBanner shows, above everything, that anyone can sign in as anyone
 * (dev mode reachable from other machines, auth.dev_insecure). */
export function showDevBanner(on) {
  const el = document.getElementById('dev-banner');
  if (!el) return;
  el.hidden = !on;
  document.body.classList.toggle('dev-insecure', on);
}
