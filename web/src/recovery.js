// After a reconnect the server's session event says whether socket.io's
// connection state recovery worked (state.js: startSession). When it did, the
// missed events were replayed and there is nothing to fetch. When the session
// is fresh, catchUp asks with one `sync` request what every room missed after
// the last message the page had (markDisconnected noted it), and asks again
// for the rooms the answer marks `more`; messages merge by id, so an overlap
// is harmless. The protocol request is passed in, so this runs in Node's tests
// with a fake server.
import { addMessages } from './state.js';

/** CATCHUP_PAGE is how many messages one catch-up asks for per room. */
export const CATCHUP_PAGE = 100;

/** MAX_ROUNDS bounds the sync requests of one catch-up. */
const MAX_ROUNDS = 100;

/**
 * catchUp fetches what every room missed and returns how many messages were
 * new. `request(event, payload)` resolves with the server's answer;
 * `loadLatest(room, {live})` fetches the latest page of a room that had no
 * message before the disconnect, and resolves with how many were new;
 * `dropRoom(name)` is called for a room the server says the user is no
 * longer in. A room whose fetch fails keeps its starting point, to be tried
 * again after the next reconnect.
 */
export async function catchUp(state, request, { loadLatest, dropRoom, page = CATCHUP_PAGE }) {
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
  for (let round = 0; round < MAX_ROUNDS && Object.keys(want).length > 0; round++) {
    const res = await request('sync', { rooms: want, limit: page });
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
      if (!r) continue;
      if (!part || typeof part !== 'object' || part.error) {
        if (part && part.error && part.error.code === 'forbidden') dropRoom(name);
        else r.catchupFrom = after;
        continue;
      }
      const msgs = Array.isArray(part.messages) ? part.messages : [];
      if (part.gap) r.gap = true;
      total += addMessages(state, r, msgs, { live: true });
      if (part.more) next[name] = msgs.length ? msgs[msgs.length - 1].id : after;
    }
    want = next;
  }
  for (const r of latest) {
    // Await first, then add: `total += await` would add to a stale total.
    const n = await loadLatest(r, { live: r.loaded });
    total += n;
  }
  return total;
}

/** reconnectedText is what the banner says after a fresh session caught up on got messages. */
export function reconnectedText(got) {
  return got > 0 ? `Reconnected: caught up on ${got} message${got === 1 ? '' : 's'}.` : 'Reconnected: you are up to date.';
}
