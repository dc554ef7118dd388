// The connection to chatd: one socket.io v4 client on the page's own origin,
// requests that wait for the server's acknowledgement, and the reconnect
// policy on top of socket.io's own (it does not retry after the server lets
// the socket go or refuses it). What the events mean for the page is up to
// the handlers app.js passes in.
import { io } from 'socket.io-client';

/** ACK_TIMEOUT_MS is how long a request waits for its answer before it has failed, in milliseconds. */
export const ACK_TIMEOUT_MS = 15000;

/** fail builds the answer of a request that did not reach the server or got no answer. */
export function fail(code, message) {
  return { ok: false, error: { code, message } };
}

/** errorText is the sentence to show for a refused request. */
export function errorText(res) {
  return (res && res.error && res.error.message) || 'Something went wrong.';
}

/**
 * connect opens a socket to chatd with auth ({userId, name} in dev mode,
 * {token} in jwt mode) and returns the Connection. handlers: connect(),
 * session(s), disconnect(reason), connectError(err), unauthorized() (the
 * server refused the sign-in; the connection is closed already),
 * reconnectAttempt(n), and the server events message(m), typing(t),
 * presence(p), membership().
 */
export function connect(auth, handlers) {
  const socket = io(location.origin, { auth, reconnectionDelayMax: 5000 });
  let closed = false;

  /** retry reconnects after a random delay of min to min+spread milliseconds, unless closed by then. */
  const retry = (min, spread) => {
    setTimeout(() => !closed && !socket.connected && socket.connect(), min + Math.random() * spread);
  };

  const conn = {
    /** connected says whether the socket is connected now. */
    get connected() {
      return !closed && socket.connected;
    },

    /** request sends one protocol request and resolves with its answer, which
     * is always an object: {ok: true, ...} or {ok: false, error: {code, message}}. */
    request(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
      return new Promise((resolve) => {
        socket.timeout(timeoutMs).emit(event, payload, (err, res) => {
          if (err) resolve(fail('unavailable', 'The server did not answer in time. Check your connection.'));
          else if (!res || typeof res !== 'object') resolve(fail('internal', 'The server sent an answer this page does not understand.'));
          else resolve(res);
        });
      });
    },

    /** typing tells the room whether the user is typing; a notice lost while offline does not matter. */
    typing(room, typing) {
      socket.volatile.emit('typing', { room, typing });
    },

    /** close disconnects for good: no handler runs afterwards. */
    close() {
      closed = true;
      socket.removeAllListeners();
      socket.io.removeAllListeners();
      socket.disconnect();
    },
  };

  socket.on('connect', () => handlers.connect());
  socket.on('session', (s) => handlers.session(s));
  socket.on('disconnect', (reason) => {
    handlers.disconnect(reason);
    // The server let us go (for example while it drains): come back by ourselves.
    if (reason === 'io server disconnect') retry(500, 1500);
  });
  socket.on('connect_error', (err) => {
    if (err && err.message === 'unauthorized') {
      conn.close();
      handlers.unauthorized();
      return;
    }
    handlers.connectError(err);
    // A refusal that socket.io does not retry by itself.
    if (!socket.active) retry(2000, 2000);
  });
  socket.io.on('reconnect_attempt', (n) => handlers.reconnectAttempt(n));

  socket.on('message', (m) => handlers.message(m));
  socket.on('typing', (t) => handlers.typing(t));
  socket.on('presence', (p) => handlers.presence(p));
  socket.on('membership', () => handlers.membership());
  return conn;
}
