// What the user does: the sign-in, join and message forms, the buttons, the
// keyboard (Enter sends, Shift+Enter a new line, Alt+Up/Down switch rooms,
// Escape closes), scrolling back, and the typing notices the page sends
// while the user types. Each handler reads the form, checks what the page can
// check by itself, and calls an action of app.js.
import { devIdentity, saveIdentity } from './identity.js';
import { currentRoom, nextRoom, roomNameError } from './state.js';
import * as timeline from './timeline.js';
import { ui } from './ui.js';
import { closeDrawers, drawer, isNarrow, openDrawer, toast, toggleJoin } from './views.js';

const TYPING_REPEAT_MS = 2500; // how often "typing: true" is repeated while typing, in milliseconds
const TYPING_IDLE_MS = 3000; // no key for this long, in milliseconds, ends "typing"

const encoder = new TextEncoder();

/**
 * bindInput connects the page's controls to the actions: signIn(identity),
 * signOut(), openRoom(name, {focus}), joinRoom(name) (resolves with '' or
 * the reason it failed), leaveRoom(name), send(room, text), loadOlder(room),
 * reconcileRooms() (ask the server for the room list), typing(room, on).
 * It returns stopTyping(), which tells the room the user typed in that the
 * user stopped (on a room switch).
 */
export function bindInput(state, actions) {
  const typing = typingNotices(state, actions);

  ui.signinForm.addEventListener('submit', (e) => onSignInSubmit(e, state, actions));
  ui.signinToken.addEventListener('keydown', (e) => {
    // A token is one line: Enter signs in.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.signinForm.requestSubmit();
    }
  });
  ui.signout.addEventListener('click', () => actions.signOut());

  const send = (e) => onSend(e, state, actions, typing.stop);
  ui.composer.addEventListener('submit', send);
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });
  ui.input.addEventListener('input', () => typing.input());
  ui.input.addEventListener('blur', () => typing.stop());

  ui.joinToggle.addEventListener('click', () => toggleJoin());
  ui.joinForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await submitJoin(ui.joinInput, ui.joinError, actions)) toggleJoin(false);
  });
  ui.joinInput.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      toggleJoin(false);
    }
  });
  ui.emptyForm.addEventListener('submit', (e) => {
    e.preventDefault();
    submitJoin(ui.emptyInput, ui.emptyError, actions);
  });

  ui.leaveBtn.addEventListener('click', () => actions.leaveRoom(state.current));
  ui.copyLink.addEventListener('click', () => copyRoomLink(state));
  ui.menuBtn.addEventListener('click', () => openDrawer('sidebar'));
  ui.sidebarClose.addEventListener('click', closeDrawers);
  ui.peopleBtn.addEventListener('click', () => (drawer() === 'people' ? closeDrawers() : openDrawer('people')));
  ui.peopleClose.addEventListener('click', closeDrawers);
  ui.scrim.addEventListener('click', closeDrawers);
  ui.jump.addEventListener('click', () => {
    timeline.scrollToBottom();
    ui.input.focus();
  });

  ui.messages.addEventListener('scroll', () => {
    const r = currentRoom(state);
    if (!r) return;
    if (ui.messages.scrollTop < 400) actions.loadOlder(r);
    timeline.scrolled();
  }, { passive: true });

  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && drawer()) {
      closeDrawers();
      return;
    }
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown') && state.order.length) {
      e.preventDefault();
      actions.openRoom(nextRoom(state, e.key === 'ArrowDown' ? 1 : -1), { focus: true });
    }
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') actions.reconcileRooms();
  });
  window.addEventListener('focus', () => actions.reconcileRooms());
  window.addEventListener('resize', () => {
    if (!isNarrow() && drawer() === 'sidebar') closeDrawers();
  });
  // Keep the newest message in view when the composer or window resizes.
  new ResizeObserver(() => timeline.resized()).observe(ui.messages);
  return { stopTyping: typing.stop };
}

function onSignInSubmit(e, state, actions) {
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
    actions.signIn(identity);
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
  actions.signIn(identity);
}

/** submitJoin joins (or opens) the room typed into input and resolves with whether it did. */
async function submitJoin(input, errorEl, actions) {
  const name = input.value.trim().replace(/^#/, '');
  errorEl.textContent = '';
  const problem = roomNameError(name) || (await actions.joinRoom(name));
  if (problem) {
    errorEl.textContent = problem;
    input.focus();
    return false;
  }
  input.value = '';
  return true;
}

function onSend(e, state, actions, stopTyping) {
  if (e) e.preventDefault();
  const r = currentRoom(state);
  if (!r) return;
  const text = ui.input.value.replace(/^\s*\n/, '').replace(/\s+$/, '');
  if (!text.trim()) return;
  const bytes = encoder.encode(text).length;
  if (bytes > state.config.messageBytes) {
    toast(`This message is ${bytes} bytes; the limit is ${state.config.messageBytes}. Shorten it or split it.`);
    return;
  }
  ui.input.value = '';
  r.draft = '';
  autosize();
  updateCount(state);
  stopTyping();
  actions.send(r, text);
}

/**
 * typingNotices sends the typing notices: "typing: true" is repeated while
 * keys are pressed and "typing: false" follows a pause, a send, leaving the
 * message box or a room switch.
 */
function typingNotices(state, actions) {
  let room = null; // the room told "typing: true", or null
  let sentAt = 0; // when it was told, in milliseconds since the epoch
  let idle = 0; // the timer that ends typing after a pause

  const stop = () => {
    clearTimeout(idle);
    if (room && state.rooms.has(room)) actions.typing(room, false);
    room = null;
    sentAt = 0;
  };

  const input = () => {
    autosize();
    updateCount(state);
    const r = currentRoom(state);
    if (!r) return;
    r.draft = ui.input.value;
    if (!ui.input.value.trim()) {
      stop();
      return;
    }
    const now = Date.now();
    if (room !== r.name || now - sentAt > TYPING_REPEAT_MS) {
      if (room && room !== r.name) stop();
      actions.typing(r.name, true);
      room = r.name;
      sentAt = now;
    }
    clearTimeout(idle);
    idle = setTimeout(stop, TYPING_IDLE_MS);
  };

  return { input, stop };
}

/** draft returns the text in the message box. */
export function draft() {
  return ui.input.value;
}

/** setDraft puts a room's unsent text back into the message box. */
export function setDraft(text) {
  ui.input.value = text;
}

/** focusComposer puts the cursor into the message box. */
export function focusComposer() {
  ui.input.focus();
}

/** focusAfterLeave puts the cursor where the user goes on after leaving a room:
 * the message box of the room now open, or the field to join one. */
export function focusAfterLeave(state) {
  (state.current ? ui.input : ui.emptyInput).focus();
}

/** autosize grows the message box with its text, up to 200 px. */
export function autosize() {
  const el = ui.input;
  el.style.height = 'auto';
  el.style.height = Math.min(el.scrollHeight, 200) + 'px';
}

function updateCount(state) {
  const bytes = encoder.encode(ui.input.value).length;
  const max = state.config.messageBytes;
  const show = bytes > max * 0.8;
  ui.charCount.textContent = show ? `${bytes} / ${max}` : '';
  ui.charCount.classList.toggle('over', bytes > max);
}

async function copyRoomLink(state) {
  if (!state.current) return;
  const url = `${location.origin}/?room=${encodeURIComponent(state.current)}`;
  try {
    await navigator.clipboard.writeText(url);
    toast('Link copied: ' + url);
  } catch {
    window.prompt('Copy this link to the room:', url);
  }
}
