// The backend's hooks end to end: connect (auth.mode hook), join, message
// and rpc against a real HTTP backend started here, which verifies every
// signature. Each hook allows, refuses and rewrites; the backend is slow
// (timeout), down (the on_error mode) and answers garbage (a failure,
// never a crash); and two instances over Redis ask the same backend.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";

import { startChatd, stopChatd, connect, connectError, ok, req, nextEvent, uid, metric, waitFor, assertServes, cleanup } from "./lib/chatd.mjs";
import { startBackend, lastRequest } from "./lib/backend.mjs";
import { startRedis } from "./lib/redis.mjs";

const SECRET = "hook-secret-0123456789abcdef0123456789";

/** closedPort is a loopback port nothing listens on: a backend that is down. */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** misbehave answers the test words that make the backend misbehave, or null. */
function misbehave(word) {
  switch (word) {
    case "slow":
      return { delayMs: 1500, json: { result: {} } };
    case "garbage":
      return { text: "<html>not json</html>" };
    case "down":
      return { destroy: true };
    case "redirect":
      return { status: 302, headers: { Location: "http://127.0.0.1:1/" }, text: "" };
    case "huge":
      return { json: { result: {}, pad: "x".repeat(70_000) } };
  }
  return null;
}

/**
 * The test backend's rules. connect: auth.ticket "good:<user>" signs in as
 * <user> with data; "no" is refused; other words misbehave. join: a room
 * starting "closed-" is refused, rooms named after a misbehaviour
 * misbehave. message: "darn" is replaced, "spam" refused. rpc: echo, fail
 * and the misbehaviours.
 */
function rules(body) {
  switch (body.hook) {
    case "connect": {
      const ticket = String(body.auth?.ticket ?? "");
      if (ticket.startsWith("good:")) {
        const userId = ticket.slice(5);
        return { json: { result: { userId, name: `User ${userId}`, data: { role: "member", plan: "pro" }, allowedRooms: ["team-red"] } } };
      }
      if (ticket === "no") return { json: { error: { code: "forbidden", message: "Your ticket was revoked" } } };
      if (ticket === "invalid") return { json: { result: { userId: "bad\u0000id" } } };
      return misbehave(ticket) ?? { json: { error: { code: "unauthorized", message: "Unknown ticket" } } };
    }
    case "join": {
      if (body.room.startsWith("closed-")) return { json: { error: { code: "forbidden", message: "This room is closed" } } };
      return misbehave(body.room.split("-")[0]) ?? { json: { result: {} } };
    }
    case "message": {
      if (body.text.includes("spam")) return { json: { error: { code: "forbidden", message: "No spam, please" } } };
      if (body.text.includes("darn")) return { json: { result: { text: body.text.replaceAll("darn", "d***") } } };
      return misbehave(body.text) ?? { json: { result: {} } };
    }
    case "rpc": {
      if (body.method === "echo") return { json: { result: { data: { you: body.user, sent: body.data } } } };
      if (body.method === "fail") return { json: { error: { code: "not_found", message: "No such order" } } };
      return misbehave(body.method) ?? { json: { error: { code: "bad_request", message: "Unknown method" } } };
    }
  }
  return { status: 400 };
}

const hookEnv = (url) => ({
  CHATD_AUTH_MODE: "hook",
  CHATD_HOOKS_SECRET: SECRET,
  CHATD_HOOKS_TIMEOUT: "400ms",
  CHATD_HOOKS_HEADERS: "User-Agent,X-Client-Version",
  CHATD_HOOKS_CONNECT_URL: `${url}/connect`,
  CHATD_HOOKS_JOIN_URL: `${url}/join`,
  CHATD_HOOKS_MESSAGE_URL: `${url}/message`,
  CHATD_HOOKS_RPC_URL: `${url}/rpc`,
  CHATD_ROOMS_POLICIES: "team-*=granted,*=open",
});

const counted = (srv, series) => metric(srv.url, series);

describe("hooks: one instance, auth.mode hook", { timeout: 60_000 }, () => {
  let backend, srv;
  before(async () => {
    backend = await startBackend(SECRET, rules);
    srv = await startChatd(hookEnv(backend.url));
  });
  after(async () => {
    await cleanup(() => stopChatd(srv), () => backend?.close());
  });

  it("connect: the backend names the user, and its data reaches the session and every later hook", async () => {
    const user = uid("alice");
    const { socket, session } = await connect(srv.url, {
      auth: { ticket: `good:${user}` },
      query: { room: "lobby" },
      extraHeaders: { "X-Client-Version": "7", Cookie: "sid=secret" },
    });
    assert.equal(session.userId, user);
    assert.equal(session.name, `User ${user}`);
    assert.deepEqual(session.data, { role: "member", plan: "pro" });
    const c = lastRequest(backend, "connect", (r) => r.auth.ticket === `good:${user}`);
    assert.equal(c.socketId, session.socketId);
    assert.equal(c.transport, "websocket");
    assert.equal(c.address, "127.0.0.1");
    assert.equal(c.user, undefined, "hook mode has no user of chatd's own");
    assert.deepEqual(c.query, { room: "lobby" });
    assert.equal(c.headers["X-Client-Version"], "7");
    assert.equal(c.headers.Cookie, undefined, "headers outside hooks.headers stay with chatd");
    const room = uid("general");
    await ok(socket, "join", { room });
    const j = lastRequest(backend, "join", (r) => r.room === room);
    assert.deepEqual(j.user, { userId: user, name: `User ${user}`, data: { role: "member", plan: "pro" } });
    assert.equal(backend.badSignatures, 0);
  });

  it("connect: refusals, failures and invalid answers are connect_error with data.code", async () => {
    const refused = await connectError(srv.url, { auth: { ticket: "no" } });
    assert.equal(refused.message, "forbidden");
    assert.deepEqual(refused.data, { code: "forbidden", message: "Your ticket was revoked" });
    const unknown = await connectError(srv.url, { auth: {} });
    assert.equal(unknown.message, "unauthorized");
    assert.equal(unknown.data.message, "Unknown ticket");
    for (const ticket of ["slow", "garbage", "down", "redirect", "huge", "invalid"]) {
      const err = await connectError(srv.url, { auth: { ticket } });
      assert.equal(err.message, "unavailable", ticket);
      assert.equal(err.data.code, "unavailable", ticket);
      assert.match(err.data.message, /backend did not answer/, ticket);
    }
    assert.equal(await counted(srv, 'chatd_hook_failures_total{hook="connect",reason="timeout"}'), 1);
    assert.equal(await counted(srv, 'chatd_hook_failures_total{hook="connect",reason="bad_response"}'), 2);
    assert.equal(await counted(srv, 'chatd_hook_failures_total{hook="connect",reason="status"}'), 1);
    assert.equal(await counted(srv, 'chatd_hook_failures_total{hook="connect",reason="too_large"}'), 1);
    assert.equal(await counted(srv, 'chatd_hook_failures_total{hook="connect",reason="unreachable"}'), 1);
    assert.ok((await counted(srv, 'chatd_hook_calls_total{hook="connect",outcome="refuse"}')) >= 2);
    await assertServesHook(srv);
  });

  it("join: the backend allows, refuses, and a failing backend refuses with unavailable", async () => {
    const { socket } = await connect(srv.url, { auth: { ticket: `good:${uid("bob")}` } });
    await ok(socket, "join", { room: uid("open") });
    assert.deepEqual(await req(socket, "join", { room: uid("closed-") }), {
      ok: false,
      error: { code: "forbidden", message: "This room is closed" },
    });
    for (const word of ["slow", "garbage", "down"]) {
      const ack = await req(socket, "join", { room: uid(`${word}-`) });
      assert.equal(ack.error?.code, "unavailable", word);
    }
    assert.deepEqual((await ok(socket, "rooms", {})).rooms.filter((r) => !r.startsWith("open")), []);
    // allowedRooms from the connect answer opens a granted room; another
    // granted room stays shut, and the join hook is not asked about it.
    await ok(socket, "join", { room: "team-red" });
    const before = backend.requests.length;
    assert.equal((await req(socket, "join", { room: "team-blue" })).error?.code, "forbidden");
    assert.equal(backend.requests.length, before, "a join the policy refuses reaches no hook");
  });

  it("message: allowed, refused with the backend's sentence, rewritten before it is stored", async () => {
    const room = uid("chat");
    const a = await connect(srv.url, { auth: { ticket: `good:${uid("ann")}` } });
    const b = await connect(srv.url, { auth: { ticket: `good:${uid("ben")}` } });
    await ok(a.socket, "join", { room });
    await ok(b.socket, "join", { room });
    const plain = await ok(a.socket, "message", { room, text: "hello" });
    assert.equal(plain.message.text, "hello");
    assert.deepEqual(await req(a.socket, "message", { room, text: "buy spam now" }), {
      ok: false,
      error: { code: "forbidden", message: "No spam, please" },
    });
    const rewritten = await ok(a.socket, "message", { room, text: "darn it" });
    assert.equal(rewritten.message.text, "d*** it");
    const seen = await nextEvent(b.socket, "message", { filter: (m) => m.id === rewritten.message.id });
    assert.equal(seen.text, "d*** it");
    for (const word of ["slow", "garbage", "down"]) {
      assert.equal((await req(a.socket, "message", { room, text: word })).error?.code, "unavailable", word);
    }
    const { messages } = await ok(a.socket, "history", { room });
    assert.deepEqual(messages.map((m) => m.text), ["hello", "d*** it"], "refused messages are not stored");
    const m = lastRequest(backend, "message", (r) => r.room === room && r.text === "hello");
    assert.equal(m.user.userId, a.session.userId);
  });

  it("rpc: the answer is the acknowledgement; errors keep their code; failures are unavailable", async () => {
    const { socket, session } = await connect(srv.url, { auth: { ticket: `good:${uid("rita")}` } });
    const echo = await ok(socket, "rpc", { method: "echo", data: { order: 42 } });
    assert.deepEqual(echo.data.sent, { order: 42 });
    assert.equal(echo.data.you.userId, session.userId);
    assert.deepEqual(await req(socket, "rpc", { method: "fail" }), { ok: false, error: { code: "not_found", message: "No such order" } });
    for (const method of ["slow", "garbage", "down", "redirect"]) {
      assert.equal((await req(socket, "rpc", { method })).error?.code, "unavailable", method);
    }
    assert.equal((await req(socket, "rpc", { method: "" })).error?.code, "bad_request");
    assert.equal((await req(socket, "rpc", { method: "no spaces" })).error?.code, "bad_request");
    assert.equal((await req(socket, "rpc", "not an object")).error?.code, "bad_request");
    assert.ok((await counted(srv, 'chatd_hook_calls_total{hook="rpc",outcome="allow"}')) >= 1);
    assert.ok((await counted(srv, 'chatd_hook_duration_seconds_count{hook="rpc"}')) >= 6);
    assert.equal(backend.badSignatures, 0);
  });
});

/** assertServesHook checks that a hook-mode instance still serves a fresh client. */
async function assertServesHook(srv) {
  const { socket } = await connect(srv.url, { auth: { ticket: `good:${uid("probe")}` } });
  await ok(socket, "join", { room: uid("probe") });
  socket.close();
}

describe("hooks: the backend down", { timeout: 30_000 }, () => {
  let open, shut, port;
  before(async () => {
    port = await closedPort();
    const down = `http://127.0.0.1:${port}/hooks`;
    const base = { CHATD_HOOKS_SECRET: SECRET, CHATD_HOOKS_TIMEOUT: "300ms" };
    [open, shut] = await Promise.all([
      startChatd({
        ...base,
        CHATD_HOOKS_CONNECT_URL: down,
        CHATD_HOOKS_CONNECT_ON_ERROR: "allow",
        CHATD_HOOKS_JOIN_URL: down,
        CHATD_HOOKS_JOIN_ON_ERROR: "allow",
        CHATD_HOOKS_MESSAGE_URL: down,
        CHATD_HOOKS_MESSAGE_ON_ERROR: "allow",
        CHATD_HOOKS_RPC_URL: down,
      }),
      startChatd({ ...base, CHATD_HOOKS_CONNECT_URL: down }),
    ]);
  });
  after(async () => {
    await Promise.all([stopChatd(open), stopChatd(shut)]);
  });

  it("on_error allow: connect, join and message go ahead unchanged; rpc answers unavailable", async () => {
    await assertServes(open);
    const { socket } = await connect(open.url, { auth: { userId: uid("dev") } });
    assert.equal((await req(socket, "rpc", { method: "anything" })).error?.code, "unavailable");
    assert.ok((await counted(open, 'chatd_hook_failures_total{hook="connect",reason="unreachable"}')) >= 2);
    assert.ok((await counted(open, 'chatd_hook_failures_total{hook="message",reason="unreachable"}')) >= 1);
    assert.ok((await counted(open, 'chatd_hook_calls_total{hook="join",outcome="fail"}')) >= 1);
  });

  it("on_error refuse (the default): the connection is refused with unavailable", async () => {
    const err = await connectError(shut.url, { auth: { userId: uid("dev") } });
    assert.equal(err.message, "unavailable");
    assert.equal(err.data.code, "unavailable");
  });

  it("a dev-mode connect hook sees chatd's user and may rename it", async () => {
    const backend = await startBackend(SECRET, (b) => ({ json: { result: { name: `${b.user.name} (verified)` } } }));
    const srv = await startChatd({ CHATD_HOOKS_SECRET: SECRET, CHATD_HOOKS_CONNECT_URL: backend.url });
    try {
      const user = uid("dana");
      const { session } = await connect(srv.url, { auth: { userId: user, name: "Dana" } });
      assert.equal(session.userId, user);
      assert.equal(session.name, "Dana (verified)");
      assert.deepEqual(lastRequest(backend, "connect").user, { userId: user, name: "Dana" });
    } finally {
      await stopChatd(srv);
      await backend.close();
    }
  });

  it("a hook URL without hooks.secret is a configuration error naming the key", async () => {
    await assert.rejects(startChatd({ CHATD_HOOKS_JOIN_URL: `http://127.0.0.1:${port}/` }, { readyTimeoutMs: 5000 }), /hooks\.secret/);
  });
});

describe("hooks: two instances over Redis", { timeout: 60_000 }, () => {
  let redis, backend, nodes;
  before(async () => {
    redis = await startRedis();
    backend = await startBackend(SECRET, rules);
    nodes = await Promise.all(
      [1, 2].map((i) => startChatd({ ...hookEnv(backend.url), CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: `hooks${i}` })),
    );
  });
  after(async () => {
    await cleanup(() => Promise.all((nodes ?? []).map(stopChatd)), () => backend?.close(), () => redis?.stop());
  });

  it("every instance asks the same backend: connect, join, message rewrite and rpc", async () => {
    const room = uid("both");
    const a = await connect(nodes[0].url, { auth: { ticket: `good:${uid("x")}` } });
    const b = await connect(nodes[1].url, { auth: { ticket: `good:${uid("y")}` } });
    assert.deepEqual(b.session.data, { role: "member", plan: "pro" });
    await ok(a.socket, "join", { room });
    await ok(b.socket, "join", { room });
    assert.equal((await req(b.socket, "join", { room: uid("closed-") })).error?.code, "forbidden");
    const sent = await ok(b.socket, "message", { room, text: "darn, two instances" });
    assert.equal(sent.message.text, "d***, two instances");
    const got = await nextEvent(a.socket, "message", { filter: (m) => m.id === sent.message.id });
    assert.equal(got.text, "d***, two instances");
    assert.equal((await req(a.socket, "message", { room, text: "spam" })).error?.code, "forbidden");
    assert.equal((await ok(b.socket, "rpc", { method: "echo", data: 1 })).data.sent, 1);
    assert.equal((await req(a.socket, "rpc", { method: "slow" })).error?.code, "unavailable");
    for (const n of nodes) {
      await waitFor("hook calls on every instance", async () => (await counted(n, 'chatd_hook_calls_total{hook="join",outcome="allow"}')) >= 1);
    }
    assert.equal(backend.badSignatures, 0);
  });
});
