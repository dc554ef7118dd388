// The elements of index.html that the views draw into and the input module
// listens to, by id, and the avatar that several views draw.
import { $, h } from './dom.js';

/** ui holds the page's elements, looked up once. */
export const ui = {
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

/** avatar returns a new avatar (initials on a colour of the user's own) with the extra class cls. */
export function avatar(userId, name, cls) {
  const el = h('span', { class: 'avatar ' + cls, 'aria-hidden': 'true' });
  fillAvatar(el, userId, name);
  return el;
}

/** fillAvatar draws the initials of name on a hue derived from userId into el. */
export function fillAvatar(el, userId, name) {
  const words = String(name || '?').trim().split(/\s+/);
  const initials = (words.length > 1 ? words[0][0] + words[1][0] : String(name || '?').slice(0, 2)).toUpperCase();
  el.textContent = [...initials].slice(0, 2).join('');
  let hash = 0;
  for (const ch of String(userId)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  el.style.setProperty('--hue', String(hash % 360));
}
