// Who the page signs in as, and what it remembers in localStorage between
// visits: the identity and the last open room. Storage may be missing
// (private mode): then the page just forgets.
const STORE_KEY = 'chatd.identity';
const LAST_ROOM_KEY = 'chatd.lastRoom';

/** devIdentity derives a stable user id from a name, so every tab that signs
 * in as "Alice" is the same user ("alice"). */
export function devIdentity(name) {
  const clean = name.trim().replace(/\s+/g, ' ').slice(0, 64);
  const userId = clean.toLowerCase().replace(/\s/g, '-');
  return { mode: 'dev', name: clean, userId };
}

/** loadIdentity returns the identity saved by an earlier visit, or null. */
export function loadIdentity() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    if (v && v.mode === 'dev' && typeof v.name === 'string' && v.name) return devIdentity(v.name);
    if (v && v.mode === 'jwt' && typeof v.token === 'string' && v.token) return { mode: 'jwt', token: v.token };
  } catch {
    // A broken entry is the same as none.
  }
  return null;
}

/** saveIdentity remembers the identity for the next visit and the other tabs. */
export function saveIdentity(identity) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(identity));
  } catch {
    // Private mode without storage: the user signs in again next time.
  }
}

/** forgetIdentity removes the saved identity (signed out or refused). */
export function forgetIdentity() {
  try {
    localStorage.removeItem(STORE_KEY);
  } catch {
    // Nothing to forget.
  }
}

/** lastRoom returns the room that was open last, or null. */
export function lastRoom() {
  try {
    return localStorage.getItem(LAST_ROOM_KEY);
  } catch {
    return null;
  }
}

/** rememberRoom notes the open room, for the next visit. */
export function rememberRoom(name) {
  try {
    localStorage.setItem(LAST_ROOM_KEY, name);
  } catch {
    // No storage: nothing to remember.
  }
}
