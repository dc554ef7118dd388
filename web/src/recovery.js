// After a reconnect the server's session event says whether socket.io's
// connection state recovery worked (state.js: startSession). When it did, the
// missed events were replayed and there is nothing to fetch. When the session
// is fresh, catchUp fetches, room by room, what came after the last message
// the page had (markDisconnected noted it), with `history` and `after`, page
// by page; messages merge by id, so an overlap is harmless. The protocol
// request is passed in, so this runs in Node's tests with a fake server.
import { addMessages } from './state.js';

/** CATCHUP_PAGE is how many messages one catch-up history request asks for. */
export const CATCHUP_PAGE = 100;

/** MAX_PAGES bounds the pages fetched per room in one catch-up. */
const MAX_PAGES = 100;

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
  await Promise.all(
    [...state.rooms.values()].map(async (r) => {
      let after = r.catchupFrom;
      r.catchupFrom = undefined;
      if (after === undefined || after === null) {
        // Nothing seen in this room yet: its latest page is what was missed.
        // (Await first, then add: `total += await` would add to a stale total.)
        if (r.loaded || r.name === state.current) {
          const n = await loadLatest(r, { live: r.loaded });
          total += n;
        }
        return;
      }
      for (let round = 0; round < MAX_PAGES; round++) {
        const res = await request('history', { room: r.name, after, limit: page });
        if (!res.ok || !Array.isArray(res.messages)) {
          if (res.error && res.error.code === 'forbidden') dropRoom(r.name);
          // Try again from here after the next reconnect (an earlier point is
          // always safe: messages merge by id).
          else r.catchupFrom = after;
          return;
        }
        if (res.gap) r.gap = true;
        total += addMessages(state, r, res.messages, { live: true });
        if (res.messages.length < page) break;
        after = res.messages[res.messages.length - 1].id;
      }
    }),
  );
  return total;
}

/** reconnectedText is what the banner says after a fresh session caught up on got messages. */
export function reconnectedText(got) {
  return got > 0 ? `Reconnected: caught up on ${got} message${got === 1 ? '' : 's'}.` : 'Reconnected: you are up to date.';
}
