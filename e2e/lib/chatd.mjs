// Harness for the chatd end-to-end tests: builds the real chatd binary, runs
// it on a free loopback port with per-suite environment, and drives it with
// the official socket.io-client v4.

import { spawn, execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { randomBytes, createHmac } from "node:crypto";
import { after } from "node:test";
import { io } from "socket.io-client";

/** REPO_ROOT is the root of the chatd repository (the parent of e2e/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** DEFAULT_TIMEOUT_MS bounds every wait for something that must happen, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** NEGATIVE_WINDOW_MS is how long a negative check listens for an event that must not come, in milliseconds. */
export const NEGATIVE_WINDOW_MS = 300;

/** TRANSPORTS are the two ways the protocol suite connects: long-polling only and WebSocket only. */
export const TRANSPORTS = [["polling"], ["websocket"]];

let builtBin; // promise of the path of the binary built by this process

const running = new Set(); // chatd processes started by this test file and not yet exited

// A safety net for every test file that uses this harness: when all its
// tests are done, close the client sockets still open and kill any chatd it
// started and did not stop, so that the file's process can exit (a leftover
// socket or child would keep `node --test` waiting forever). Only under the
// test runner (lib/run.mjs imports this module too).
if (process.env.NODE_TEST_CONTEXT) {
  after(() => {
    closeAll();
    for (const s of everySocket) s.close();
    for (const child of running) child.kill("SIGKILL");
  });
}

/**
 * buildChatd builds ./cmd/chatd once per process into a temporary directory
 * and resolves to the binary's path; with CHATD_BIN set it uses that binary.
 */
export function buildChatd() {
  if (process.env.CHATD_BIN) return Promise.resolve(process.env.CHATD_BIN);
  if (!builtBin) {
    builtBin = new Promise((resolve, reject) => {
      const dir = mkdtempSync(path.join(tmpdir(), "chatd-e2e-"));
      const bin = path.join(dir, "chatd");
      process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
      execFile("go", ["build", "-o", bin, "./cmd/chatd"], { cwd: REPO_ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`go build ./cmd/chatd failed:\n${stderr}${stdout}`));
        else resolve(bin);
      });
    });
  }
  return builtBin;
}

/** freePort asks the kernel for a free loopback TCP port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * startChatd runs the chatd binary on a free loopback port with the given
 * CHATD_ environment (plus CHATD_LOG_LEVEL=warn and CHATD_LISTEN; no CHATD_
 * variable of the test process is inherited) and resolves
 * once GET /healthz answers 200. The returned object has url, the child
 * process, output() (its stdout+stderr so far), exited (a promise of
 * {code, signal}) and stop() (SIGTERM, resolves to {code, signal}).
 */
export async function startChatd(env = {}, { readyTimeoutMs = 20000 } = {}) {
  const bin = await buildChatd();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // chatd refuses unknown CHATD_ variables, so none are inherited (CHATD_BIN
  // is the harness's own).
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CHATD_")));
  // A 1 s drain window (the default is 10 s) keeps each stop short; the
  // suites that test the shutdown set their own settings.
  const drain = env.CHATD_SHUTDOWN_TIMEOUT || env.CHATD_SHUTDOWN_DRAIN ? {} : { CHATD_SHUTDOWN_DRAIN: "1s" };
  const childEnv = { ...inherited, CHATD_LOG_LEVEL: "warn", ...drain, ...env, CHATD_LISTEN: `127.0.0.1:${port}` };
  const child = spawn(bin, [], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  child.on("exit", () => running.delete(child));
  let out = "";
  const keep = (chunk) => {
    out += chunk.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.on("error", (err) => {
      exitInfo = { code: null, signal: null, error: err };
      resolve(exitInfo);
    });
  });

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitInfo) {
      throw new Error(`chatd exited before it was healthy (${JSON.stringify(exitInfo)}); output:\n${out}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`chatd did not answer GET /healthz with 200 within ${readyTimeoutMs} ms; output:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const srv = {
    url,
    port,
    child,
    env: childEnv,
    exited,
    output: () => out,
    /** stop sends SIGTERM and resolves to {code, signal}; after timeoutMs it sends SIGQUIT (a goroutine dump into the output), then SIGKILL. */
    async stop(timeoutMs = 40000) {
      if (!exitInfo) child.kill("SIGTERM");
      let timer;
      const killed = new Promise((resolve) => {
        timer = setTimeout(async () => {
          // SIGQUIT makes a Go program print every goroutine's stack: the
          // output then shows where the shutdown hung.
          child.kill("SIGQUIT");
          await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
          child.kill("SIGKILL");
          resolve({ code: null, signal: "SIGQUIT", timedOut: true });
        }, timeoutMs);
      });
      const res = await Promise.race([exited, killed]);
      clearTimeout(timer);
      if (res.timedOut) await exited;
      return res;
    },
  };
  return srv;
}

/**
 * stopChatd stops srv with SIGTERM and throws (with the process output)
 * unless it exits with status 0. It also closes every client socket still
 * open so that nothing keeps the test process alive.
 */
export async function stopChatd(srv) {
  closeAll();
  if (!srv) return;
  const res = await srv.stop();
  if (res.code !== 0) {
    throw new Error(`chatd did not exit 0 on SIGTERM: ${JSON.stringify(res)}; output:\n${srv.output()}`);
  }
}

let seq = 0;
/** uid returns a unique name (for user ids and rooms) with the given prefix. */
export function uid(prefix = "u") {
  seq += 1;
  const id = `${prefix}-${process.pid}-${seq}-${randomBytes(3).toString("hex")}`;
  // 24 letters, digits, '-' and '_' is the shape of a socket id, which no
  // room may have.
  return id.length === 24 ? `${id}x` : id;
}

// ---------------------------------------------------------------- clients

const INBOX = Symbol("inbox");
const open = new Set(); // sockets closeAll closes
const everySocket = new Set(); // every socket, closed by the file-level safety net

function attachInbox(socket) {
  const inbox = { events: [], waiters: new Set(), disconnects: [], disconnectWaiters: new Set() };
  socket[INBOX] = inbox;
  socket.onAny((event, ...args) => {
    const entry = { event, payload: args[0], args };
    for (const w of inbox.waiters) {
      if (w.name === event && w.filter(entry.payload)) {
        inbox.waiters.delete(w);
        w.resolve(entry.payload);
        return;
      }
    }
    inbox.events.push(entry);
  });
  socket.on("disconnect", (reason) => {
    inbox.disconnects.push(reason);
    for (const w of inbox.disconnectWaiters) w(reason);
    inbox.disconnectWaiters.clear();
  });
  return inbox;
}

function describeInbox(inbox) {
  return JSON.stringify(inbox.events.map((e) => [e.event, e.payload])).slice(0, 2000);
}

/**
 * connect opens a socket.io client (forceNew, no reconnection) and resolves
 * to {socket, session} once the server's `session` event has arrived. It
 * rejects with the connect_error (its message is the server's) or on timeout.
 * Sockets are closed by closeAll unless persistent is true (close those with
 * close).
 */
export function connect(
  url,
  { auth, transports = ["websocket"], timeoutMs = DEFAULT_TIMEOUT_MS, persistent = false, ...opts } = {},
) {
  const socket = io(url, { auth, transports, forceNew: true, reconnection: false, ...opts });
  if (!persistent) open.add(socket);
  everySocket.add(socket);
  attachInbox(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.close();
      reject(new Error(`no session event within ${timeoutMs} ms (connected: ${socket.connected})`));
    }, timeoutMs);
    const onError = (err) => {
      cleanup();
      socket.close();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("connect_error", onError);
    };
    socket.on("connect_error", onError);
    nextEvent(socket, "session", { timeoutMs: timeoutMs + 1000 }).then(
      (session) => {
        cleanup();
        resolve({ socket, session });
      },
      () => {},
    );
  });
}

/** connectError connects and resolves to the connect_error it expects (rejects if a session starts). */
export async function connectError(url, options) {
  try {
    const { socket, session } = await connect(url, options);
    socket.close();
    throw Object.assign(new Error(`connected although a connect_error was expected: ${JSON.stringify(session)}`), {
      unexpected: true,
    });
  } catch (err) {
    if (err.unexpected) throw err;
    return err;
  }
}

/** closeAll closes every socket opened by connect. */
export function closeAll() {
  for (const s of open) s.close();
  open.clear();
}

/** close closes one socket and resolves once the client has seen its disconnect. */
export function close(socket) {
  open.delete(socket);
  if (!socket.connected) return Promise.resolve();
  const p = waitDisconnect(socket);
  socket.disconnect();
  return p;
}

/** req sends a request and resolves to its acknowledgement (5 s timeout). */
export function req(socket, event, ...payload) {
  return socket.timeout(DEFAULT_TIMEOUT_MS).emitWithAck(event, ...payload);
}

/**
 * ok sends a request and resolves to its acknowledgement, throwing unless it
 * is {ok: true, ...}.
 */
export async function ok(socket, event, payload) {
  const ack = await req(socket, event, payload);
  if (!ack || ack.ok !== true) {
    throw new Error(`${event} ${JSON.stringify(payload)} was not ok: ${JSON.stringify(ack)}`);
  }
  return ack;
}

/**
 * nextEvent resolves to the payload of the next (not yet consumed) event
 * called name whose payload passes filter; events are recorded from the
 * moment the socket was created, so nothing is missed between an action and
 * the wait for its effect. Rejects after timeoutMs.
 */
export function nextEvent(socket, name, { filter = () => true, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const inbox = socket[INBOX];
  const i = inbox.events.findIndex((e) => e.event === name && filter(e.payload));
  if (i >= 0) {
    const [e] = inbox.events.splice(i, 1);
    return Promise.resolve(e.payload);
  }
  return new Promise((resolve, reject) => {
    const w = {
      name,
      filter,
      resolve: (p) => {
        clearTimeout(timer);
        resolve(p);
      },
    };
    const timer = setTimeout(() => {
      inbox.waiters.delete(w);
      reject(new Error(`no "${name}" event matching the filter within ${timeoutMs} ms; unconsumed events: ${describeInbox(inbox)}`));
    }, timeoutMs);
    inbox.waiters.add(w);
  });
}

/**
 * expectNoEvent throws if an event called name whose payload passes filter
 * is already recorded or arrives within windowMs (a short negative check).
 */
export async function expectNoEvent(socket, name, { filter = () => true, windowMs = NEGATIVE_WINDOW_MS } = {}) {
  const inbox = socket[INBOX];
  const check = () => {
    const e = inbox.events.find((x) => x.event === name && filter(x.payload));
    if (e) throw new Error(`unexpected "${name}" event: ${JSON.stringify(e.payload)}`);
  };
  check();
  let got;
  const w = { name, filter, resolve: (p) => (got = p) };
  inbox.waiters.add(w);
  await new Promise((r) => setTimeout(r, windowMs));
  inbox.waiters.delete(w);
  if (got !== undefined) throw new Error(`unexpected "${name}" event: ${JSON.stringify(got)}`);
  check();
}

/** waitDisconnect resolves to the reason of the socket's disconnect (at once if it already happened). */
export function waitDisconnect(socket, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const inbox = socket[INBOX];
  if (inbox.disconnects.length > 0) return Promise.resolve(inbox.disconnects[0]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      inbox.disconnectWaiters.delete(done);
      reject(new Error(`socket not disconnected within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (reason) => {
      clearTimeout(timer);
      resolve(reason);
    };
    inbox.disconnectWaiters.add(done);
  });
}

/** disconnectReasons lists the reasons of the disconnects the socket has seen. */
export function disconnectReasons(socket) {
  return [...socket[INBOX].disconnects];
}

/** byId is a filter for `message` events with the given id. */
export const byId = (id) => (m) => m && m.id === id;

/** presenceOf is a filter for `presence` events of a user in a room with an event name. */
export const presenceOf = (room, userId, event) => (p) =>
  p && p.room === room && p.userId === userId && (event === undefined || p.event === event);

/** inRoom is a filter for events whose payload names the room. */
export const inRoom = (room) => (p) => p && p.room === room;

/** sorted returns a sorted copy of a list (for comparing sets). */
export const sorted = (xs) => [...xs].sort();

/**
 * assertServes checks that srv still serves a fresh client: /healthz is 200
 * and a new user can connect, join a room, send a message and list rooms.
 */
export async function assertServes(srv, transports = ["websocket"]) {
  const res = await fetch(`${srv.url}/healthz`, { signal: AbortSignal.timeout(DEFAULT_TIMEOUT_MS) });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET /healthz answered ${res.status}`);
  const userId = uid("probe");
  const room = uid("probe-room");
  const { socket } = await connect(srv.url, { auth: { userId }, transports });
  try {
    await ok(socket, "join", { room });
    const sent = await ok(socket, "message", { room, text: "still serving" });
    if (!sent.message || sent.message.text !== "still serving") {
      throw new Error(`probe message ack malformed: ${JSON.stringify(sent)}`);
    }
    const rooms = await ok(socket, "rooms", {});
    if (!Array.isArray(rooms.rooms) || !rooms.rooms.includes(room)) {
      throw new Error(`probe rooms ack does not list ${room}: ${JSON.stringify(rooms)}`);
    }
  } finally {
    await close(socket);
  }
}

// ---------------------------------------------------------------- JWT

/** b64url encodes a Buffer or string as unpadded base64url. */
export const b64url = (b) => Buffer.from(b).toString("base64url");

/**
 * signJWT builds a JWT with the given header fields and claims, signed with
 * HMAC (hash "sha256" for HS256, "sha512" for HS512) or unsigned when hash is
 * null.
 */
export function signJWT(claims, secret, { alg = "HS256", hash = "sha256" } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  if (hash === null) return `${input}.`;
  return `${input}.${b64url(createHmac(hash, secret).update(input).digest())}`;
}

/** waitFor polls fn (every 25 ms) until it returns a truthy value, which it resolves to; it fails after timeoutMs. */
export async function waitFor(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** metric reads one unlabelled series from chatd's /metrics; NaN when absent or unreachable. */
export async function metric(url, name) {
  try {
    const text = await (await fetch(url + "/metrics", { signal: AbortSignal.timeout(2000) })).text();
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    return line ? Number(line.split(" ")[1]) : NaN;
  } catch {
    return NaN;
  }
}


/**
 * cleanup runs every step (a function, or null to skip) in order, even
 * after one throws, and then throws the first error: an after hook whose
 * chatd failed to stop (a race report, a non-zero exit) must still stop the
 * backends and Redis servers it started, or the test process never exits.
 */
export async function cleanup(...steps) {
  let first;
  for (const step of steps) {
    if (!step) continue;
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw first;
}
