// Holding up under abuse, driven against the chatd binary with the official
// socket.io-client and raw HTTP: catching up in one `sync` request with the
// default limits, and the HTTP timeouts, header and body bounds and the
// throttle on wrong API tokens.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { execFile } from "node:child_process";
import { startRedis } from "./lib/redis.mjs";
import {
  startChatd, stopChatd, connect, connectError, close, ok, req, uid, closeAll, metric, waitFor, nextEvent, expectNoEvent,
} from "./lib/chatd.mjs";
import { readdirSync, rmSync } from "node:fs";
import path from "node:path";

/** TOKEN is the server API token of the suites that send through the API. */
const TOKEN = `e2e-limits-${randomBytes(16).toString("hex")}`;

/** post sends a message to room through the server API and resolves to it. */
async function post(srv, room, text) {
  const res = await fetch(`${srv.url}/api/v1/rooms/${encodeURIComponent(room)}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ text, userId: "bob" }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.message;
}

/** inBatches runs fn over items, n at a time. */
async function inBatches(items, n, fn) {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

describe("sync: catching up is one request", () => {
  let srv;
  before(async () => {
    // Default socket limits; the API is only the test's way to fill rooms fast.
    srv = await startChatd({ CHATD_API_TOKEN: TOKEN, CHATD_API_RATE: "2000", CHATD_API_BURST: "2000" });
  });
  after(() => stopChatd(srv));

  it("a user in limits.rooms_per_user (100) rooms reconnecting fresh catches up without rate_limited", async () => {
    const alice = uid("alice");
    const rooms = Array.from({ length: 100 }, (_, i) => `${uid("r")}-${i}`);
    // Joining 100 rooms is paced over 4 tabs: 25 joins each, within a tab's burst.
    const tabs = [];
    for (let i = 0; i < 4; i++) tabs.push((await connect(srv.url, { auth: { userId: alice } })).socket);
    await Promise.all(tabs.map((t, i) => inBatches(rooms.slice(i * 25, i * 25 + 25), 25, (r) => ok(t, "join", { room: r }))));
    const seen = {};
    await inBatches(rooms, 20, async (r) => {
      seen[r] = (await post(srv, r, `${r} seen`)).id;
    });
    for (const t of tabs) t.close();

    // While alice is away, 3 messages land in every room.
    await inBatches(rooms, 20, async (r) => {
      for (let i = 0; i < 3; i++) await post(srv, r, `${r} missed ${i}`);
    });

    const { socket, session } = await connect(srv.url, { auth: { userId: alice } });
    assert.equal(session.recovered, false);
    assert.deepEqual([...session.rooms].sort(), [...rooms].sort());
    const ack = await req(socket, "sync", { rooms: seen });
    assert.equal(ack.ok, true, JSON.stringify(ack).slice(0, 500));
    assert.equal(Object.keys(ack.rooms).length, 100);
    for (const r of rooms) {
      const part = ack.rooms[r];
      assert.deepEqual(part.messages.map((m) => m.text), [0, 1, 2].map((i) => `${r} missed ${i}`), r);
      assert.equal(part.more, undefined, r);
      assert.equal(part.gap, undefined, r);
    }
  });

  it("answers per room: more to fetch, not a member, a bad id", async () => {
    const { socket } = await connect(srv.url, { auth: { userId: uid("carol") } });
    const room = uid("room");
    await ok(socket, "join", { room });
    const first = await post(srv, room, "m0");
    for (let i = 1; i <= 4; i++) await post(srv, room, `m${i}`);
    const ack = await req(socket, "sync", { rooms: { [room]: first.id, [uid("other")]: null, x: 5 }, limit: 2 });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const mine = ack.rooms[room];
    assert.deepEqual(mine.messages.map((m) => m.text), ["m1", "m2"]);
    assert.equal(mine.more, true);
    const others = Object.entries(ack.rooms).filter(([r]) => r !== room).map(([, v]) => v.error.code).sort();
    assert.deepEqual(others, ["bad_request", "forbidden"]);
    const next = await req(socket, "sync", { rooms: { [room]: mine.messages[1].id }, limit: 2 });
    assert.deepEqual(next.rooms[room].messages.map((m) => m.text), ["m3", "m4"]);
    assert.equal(next.rooms[room].more, undefined);

    const bad = await req(socket, "sync", {});
    assert.equal(bad.ok, false);
    assert.equal(bad.error.code, "bad_request");
    closeAll();
  });
});

/** rawHTTP opens a TCP connection to srv, writes text, and resolves to {data, ms}: what the server answered and when it closed the connection. */
function rawHTTP(srv, text, { limitMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    let data = "";
    const conn = net.connect(srv.port, "127.0.0.1", () => conn.write(text));
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`the server kept the connection open for ${limitMs} ms; it answered ${JSON.stringify(data.slice(0, 200))}`));
    }, limitMs);
    conn.on("data", (b) => (data += b.toString()));
    conn.on("error", () => {});
    conn.on("close", () => {
      clearTimeout(timer);
      resolve({ data, ms: Date.now() - start });
    });
  });
}

describe("HTTP hardening", () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      CHATD_API_TOKEN: TOKEN,
      CHATD_HTTP_BODY_TIMEOUT: "1s",
      CHATD_HTTP_IDLE_TIMEOUT: "1s",
      CHATD_HTTP_TRUSTED_PROXIES: "127.0.0.1",
    });
  });
  after(() => stopChatd(srv));

  it("a polling POST whose body never comes is cut within http.body_timeout", async () => {
    const { ms } = await rawHTTP(srv, "POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n4");
    assert.ok(ms >= 900 && ms < 4000, `cut after ${ms} ms`);
  });

  it("an idle keep-alive connection is closed after http.idle_timeout", async () => {
    const { data, ms } = await rawHTTP(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(data, /^HTTP\/1.1 200/);
    assert.ok(ms >= 900 && ms < 4000, `closed after ${ms} ms`);
  });

  it("@connections refuses a wrong token before reading a 1 MiB body", async () => {
    const { data } = await rawHTTP(srv, `POST /@connections/abc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: ${1 << 20}\r\n\r\n`);
    assert.match(data, /^HTTP\/1.1 403/);
  });

  it("wrong API tokens are throttled per client address with 429 and a JSON body", async () => {
    const call = (token, addr) =>
      fetch(`${srv.url}/api/v1/rooms/general/messages`, {
        headers: { authorization: `Bearer ${token}`, "x-forwarded-for": addr },
        signal: AbortSignal.timeout(5000),
      });
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      const res = await call(`guess-${i}`, "203.0.113.7");
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401));
    assert.deepEqual(statuses.slice(10), [429, 429]);
    const res = await call(TOKEN, "203.0.113.7");
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    assert.equal((await res.json()).error.code, "rate_limited");
    const other = await call(TOKEN, "198.51.100.7");
    assert.equal(other.status, 200);
    await other.arrayBuffer();
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(text, /chatd_limit_refusals_total\{limit="api_auth_failures"\} 3/);
  });

  it("a short api.token is a configuration error naming the key", async () => {
    await assert.rejects(startChatd({ CHATD_API_TOKEN: "abc" }), /api\.token: must be at least 32 characters/);
  });
});

/** refusals reads chatd_limit_refusals_total{limit} from srv's /metrics. */
async function refusals(srv, limit) {
  const text = await (await fetch(`${srv.url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const line = text.split("\n").find((l) => l.startsWith(`chatd_limit_refusals_total{limit="${limit}"} `));
  return line ? Number(line.split(" ")[1]) : NaN;
}

/** handshake starts a bare Engine.IO polling session as the client at addr and resolves to {status, body}. */
async function handshake(srv, addr) {
  const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`, {
    headers: addr ? { "x-forwarded-for": addr } : {},
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: await res.text(), retryAfter: res.headers.get("retry-after") };
}

describe("connection limits", () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      CHATD_HTTP_TRUSTED_PROXIES: "127.0.0.1",
      CHATD_LIMITS_SOCKETS_PER_USER: "3",
      CHATD_LIMITS_CONNECTIONS_PER_ADDRESS: "4",
      CHATD_LIMITS_HANDSHAKES_PER_SECOND: "3",
    });
  });
  after(() => stopChatd(srv));

  const as = (addr) => ({ extraHeaders: { "x-forwarded-for": addr } });

  it("limits.sockets_per_user: the next socket gets connect_error rate_limited; others are unaffected", async () => {
    const user = uid("tabs");
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push((await connect(srv.url, { auth: { userId: user }, ...as(`192.0.2.${i + 1}`) })).socket);
    const err = await connectError(srv.url, { auth: { userId: user }, ...as("192.0.2.9") });
    assert.equal(err.message, "rate_limited");
    assert.equal(err.data.code, "rate_limited");
    assert.match(err.data.message, /limits\.sockets_per_user/);
    await connect(srv.url, { auth: { userId: uid("other") }, ...as("192.0.2.10") });
    await close(tabs[0]);
    await waitFor("a closed tab to free its place", async () => {
      try {
        await connect(srv.url, { auth: { userId: user }, ...as("192.0.2.11") });
        return true;
      } catch {
        return false;
      }
    });
    assert.ok((await refusals(srv, "sockets_per_user")) >= 1);
    closeAll();
  });

  it("limits.connections_per_address: the next socket from that address is refused, other addresses are not", async () => {
    const addr = "198.51.100.20";
    for (let i = 0; i < 4; i++) await connect(srv.url, { auth: { userId: uid("a") }, ...as(addr) });
    const err = await connectError(srv.url, { auth: { userId: uid("a") }, ...as(addr) });
    assert.equal(err.data.code, "rate_limited");
    assert.match(err.data.message, /limits\.connections_per_address/);
    await connect(srv.url, { auth: { userId: uid("a") }, ...as("198.51.100.21") });
    assert.ok((await refusals(srv, "connections_per_address")) >= 1);
    closeAll();
  });

  it("limits.handshakes_per_second: a burst of handshakes from one address gets 429 before the handshake", async () => {
    const addr = "203.0.113.30";
    const got = [];
    for (let i = 0; i < 10; i++) got.push(await handshake(srv, addr));
    const refused = got.filter((r) => r.status === 429);
    assert.ok(refused.length >= 3, `statuses ${got.map((r) => r.status)}`);
    assert.equal(JSON.parse(refused[0].body).code, "rate_limited");
    assert.ok(Number(refused[0].retryAfter) >= 1);
    assert.equal((await handshake(srv, "203.0.113.31")).status, 200);
    assert.ok((await refusals(srv, "handshakes_per_second")) >= 3);
  });

  it("an Engine.IO session that never sends its socket.io CONNECT is closed within a few seconds; connected ones stay", async () => {
    const started = Date.now();
    const kept = [];
    for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
      kept.push((await connect(srv.url, { auth: { userId: uid("kept") }, transports, ...as(`203.0.113.${41 + kept.length}`) })).socket);
    }
    const { status, body } = await handshake(srv, "203.0.113.40");
    assert.equal(status, 200);
    const { sid } = JSON.parse(body.slice(1));
    await waitFor(
      "the bare session to be closed",
      async () => {
        const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { signal: AbortSignal.timeout(30000) });
        const text = await res.text();
        return res.status === 400 || text.includes("1");
      },
      10000,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, started + 7000 - Date.now())));
    for (const socket of kept) {
      assert.equal(socket.connected, true, `a ${socket.io.engine.transport.name} socket was closed by the connect timeout`);
      await ok(socket, "rooms", {});
    }
    closeAll();
  });
});

describe("refused connections leave nothing behind", () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      CHATD_HTTP_TRUSTED_PROXIES: "127.0.0.1",
      CHATD_HTTP_IDLE_TIMEOUT: "1s",
      CHATD_LIMITS_SOCKETS_PER_USER: "1",
      CHATD_LIMITS_CONNECTIONS_PER_ADDRESS: "1",
      CHATD_LIMITS_HANDSHAKES_PER_SECOND: "5",
      CHATD_LIMITS_CONNECTIONS: "25",
    });
  });
  after(() => stopChatd(srv));

  const as = (addr) => ({ extraHeaders: { "x-forwarded-for": addr } });
  const heap = () => metric(srv.url, "go_memstats_heap_inuse_bytes");
  const goroutines = () => metric(srv.url, "go_goroutines");

  it("goroutines and heap return to their baseline after hundreds of refusals of every limit", async () => {
    // Warm up what the first connections start, then take the baseline at rest.
    for (let i = 0; i < 3; i++) await close((await connect(srv.url, { auth: { userId: uid("warm") }, ...as(`10.9.0.${i}`) })).socket);
    await new Promise((r) => setTimeout(r, 1500));
    const base = { goroutines: await goroutines(), heap: await heap() };
    const before = {};
    for (const l of ["sockets_per_user", "connections_per_address", "handshakes_per_second", "connections"]) before[l] = (await refusals(srv, l)) || 0;

    // A burst from one address past its handshake rate. The sessions it
    // admits (its burst of 10) never send CONNECT: they are dropped 5 s later.
    const burst = await Promise.all(Array.from({ length: 40 }, () => handshake(srv, "10.3.0.1")));
    assert.ok(burst.filter((r) => r.status === 429).length >= 25, `statuses ${burst.map((r) => r.status)}`);
    const user = uid("holder");
    const holder = await connect(srv.url, { auth: { userId: user }, ...as("10.1.0.1") });
    for (let i = 0; i < 100; i += 10) {
      // The same user from other addresses, other users from the holder's address.
      await Promise.all(Array.from({ length: 10 }, (_, j) => connectError(srv.url, { auth: { userId: user }, ...as(`10.2.${i}.${j}`) })));
      await Promise.all(Array.from({ length: 10 }, () => connectError(srv.url, { auth: { userId: uid("x") }, ...as("10.1.0.1") })));
    }
    // The instance full: every further handshake gets 503.
    // Fill the instance; the bare sessions of the burst count until dropped.
    const fill = [];
    for (let i = 0; i < 24; i++) {
      const attempt = () => connect(srv.url, { auth: { userId: uid("fill") }, ...as(`10.4.0.${i}`) }).then((c) => c.socket, () => null);
      fill.push(await waitFor(`room for connection ${i + 2} of 25`, attempt, 15000));
    }
    const full = await Promise.all(Array.from({ length: 100 }, (_, i) => handshake(srv, `10.5.0.${i}`)));
    assert.ok(full.every((r) => r.status === 503), `statuses ${[...new Set(full.map((r) => r.status))]}`);
    await Promise.all(fill.map((s) => close(s)));
    for (const l of Object.keys(before)) {
      assert.ok((await refusals(srv, l)) - before[l] >= 10, `${l}: ${(await refusals(srv, l)) - before[l]} refusals`);
    }
    // The holder and the others were never disturbed.
    assert.equal(holder.socket.connected, true);
    await ok(holder.socket, "rooms", {});

    await close(holder.socket);
    // Polled every half second: each read is an HTTP request, and faster
    // polling would keep connections (and goroutines) of its own open.
    let now;
    const deadline = Date.now() + 20000;
    for (;;) {
      now = { goroutines: await goroutines(), heap: await heap() };
      if (now.goroutines <= base.goroutines + 3 && now.heap <= base.heap + 4 * 1024 * 1024) break;
      assert.ok(Date.now() < deadline, `after 20 s: ${JSON.stringify(now)}, baseline ${JSON.stringify(base)} (+3 goroutines, +4 MiB)`);
      await new Promise((r) => setTimeout(r, 500));
    }
  });
});

describe("limits.connections", () => {
  let srv;
  before(async () => {
    srv = await startChatd({ CHATD_LIMITS_CONNECTIONS: "3" });
  });
  after(() => stopChatd(srv));

  it("past it, a new connection gets 503 before the handshake, and connect_error on the client", async () => {
    for (let i = 0; i < 3; i++) await connect(srv.url, { auth: { userId: uid("c") } });
    const res = await handshake(srv);
    assert.equal(res.status, 503);
    assert.equal(JSON.parse(res.body).code, "unavailable");
    const err = await connectError(srv.url, { auth: { userId: uid("c") }, transports: ["polling"] });
    assert.ok(err, "a connect_error, not a hang");
    assert.ok((await refusals(srv, "connections")) >= 2);
    closeAll();
  });
});

describe("limits.user_events_per_second: one budget over all a user's sockets", () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      CHATD_LIMITS_EVENTS_PER_SECOND: "5",
      CHATD_LIMITS_EVENT_BURST: "8",
      CHATD_LIMITS_USER_EVENTS_PER_SECOND: "5",
      CHATD_LIMITS_USER_EVENT_BURST: "10",
    });
  });
  after(() => stopChatd(srv));

  it("three tabs together get rate_limited past the user's burst; another user does not", async () => {
    const user = uid("tabs");
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push((await connect(srv.url, { auth: { userId: user } })).socket);
    const acks = await Promise.all(tabs.flatMap((t) => Array.from({ length: 8 }, () => req(t, "rooms", {}))));
    const limited = acks.filter((a) => !a.ok);
    assert.ok(limited.length >= 10 && limited.length <= 14, `${limited.length} of 24 refused`);
    assert.equal(limited[0].error.code, "rate_limited");
    assert.match(limited[0].error.message, /connections together/);
    const { socket: other } = await connect(srv.url, { auth: { userId: uid("other") } });
    const theirs = await Promise.all(Array.from({ length: 8 }, () => req(other, "rooms", {})));
    assert.ok(theirs.every((a) => a.ok));
    assert.ok((await refusals(srv, "user_events")) >= 10);
    closeAll();
  });
});

/** redisCli runs one redis-cli command against redis and resolves to its output. */
function redisCli(redis, ...args) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", ["-p", String(redis.port), ...args], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

describe("history.ttl: a room's history expires after its last message", () => {
  it("in memory: the history is gone after the TTL", async () => {
    const srv = await startChatd({ CHATD_HISTORY_TTL: "1s" });
    try {
      const { socket } = await connect(srv.url, { auth: { userId: uid("t") } });
      const room = uid("ttl");
      await ok(socket, "join", { room });
      await ok(socket, "message", { room, text: "soon gone" });
      assert.equal((await ok(socket, "history", { room })).messages.length, 1);
      await waitFor("the history to expire", async () => (await ok(socket, "history", { room })).messages.length === 0, 5000);
    } finally {
      await stopChatd(srv);
    }
  });

  it("in Redis: the room's stream key expires", async () => {
    const redis = await startRedis();
    const prefix = uid("ttl");
    const srv = await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_REDIS_PREFIX: prefix, CHATD_HISTORY_TTL: "2s" });
    try {
      const { socket } = await connect(srv.url, { auth: { userId: uid("t") } });
      const room = uid("ttl");
      await ok(socket, "join", { room });
      await ok(socket, "message", { room, text: "soon gone" });
      const key = `${prefix}:{r:${room}}:history`;
      const ttl = Number(await redisCli(redis, "PTTL", key));
      assert.ok(ttl > 0 && ttl <= 2000, `PTTL ${ttl}`);
      await waitFor("the stream to expire", async () => (await redisCli(redis, "EXISTS", key)) === "0", 6000);
      assert.equal((await ok(socket, "history", { room })).messages.length, 0);
    } finally {
      await stopChatd(srv);
      await redis.stop();
    }
  });
});

describe("Redis that forgets: two instances, Redis restarted without its data", () => {
  let redis;
  let nodes = [];
  before(async () => {
    redis = await startRedis();
    const prefix = uid("lost");
    for (let i = 0; i < 2; i++) {
      nodes.push(await startChatd({
        CHATD_REDIS_URL: redis.url, CHATD_REDIS_PREFIX: prefix, CHATD_INSTANCE_ID: `lost${i}`,
        CHATD_PRESENCE_TTL: "3s", // checks (with the presence reap) every second
      }));
    }
    for (const srv of nodes) await waitFor(`${srv.url} to see 2 nodes`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === 2);
  });
  after(async () => {
    for (const srv of nodes) await stopChatd(srv);
    await redis.stop();
  });

  it("each instance notices, counts it, and no socket keeps receiving a room it can no longer send to", async () => {
    const [a, b] = nodes;
    const room = uid("room");
    const { socket: alice } = await connect(a.url, { auth: { userId: uid("alice") } });
    const { socket: bob } = await connect(b.url, { auth: { userId: uid("bob") } });
    await ok(alice, "join", { room });
    await ok(bob, "join", { room });
    await ok(bob, "message", { room, text: "before" });

    const aliceLeft = nextEvent(alice, "membership", { filter: (m) => m.room === room && m.event === "left", timeoutMs: 20000 });
    const bobLeft = nextEvent(bob, "membership", { filter: (m) => m.room === room && m.event === "left", timeoutMs: 20000 });
    await redis.stop();
    for (const f of readdirSync(redis.dir)) rmSync(path.join(redis.dir, f), { recursive: true, force: true });
    await redis.start();

    for (const srv of nodes) {
      await waitFor(`${srv.url} to notice the loss`, async () => (await metric(srv.url, "chatd_redis_data_lost_total")) >= 1);
    }
    await aliceLeft;
    await bobLeft;
    for (const srv of nodes) assert.match(srv.output(), /Redis lost its data/);

    // What is stored and what the sockets receive agree again: bob's send is
    // refused, and a new member's message does not reach alice.
    const refused = await req(bob, "message", { room, text: "after" });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, "forbidden");
    await waitFor("the cluster to be ready again", async () => (await metric(b.url, "chatd_redis_ready")) === 1);
    const { socket: carol } = await connect(b.url, { auth: { userId: uid("carol") } });
    await ok(carol, "join", { room });
    await ok(carol, "message", { room, text: "new" });
    await expectNoEvent(alice, "message", { filter: (m) => m.text === "new" });
    // Joining again works as before.
    await ok(alice, "join", { room });
    const got = nextEvent(alice, "message", { filter: (m) => m.text === "again" });
    await ok(carol, "message", { room, text: "again" });
    await got;
    closeAll();
  });
});

describe("bare Engine.IO handshakes do not pile up", () => {
  let srv;
  before(async () => {
    // Idle keep-alive connections would hold goroutines of their own.
    srv = await startChatd({ CHATD_LIMITS_HANDSHAKES_PER_SECOND: "0", CHATD_HTTP_IDLE_TIMEOUT: "1s" });
  });
  after(() => stopChatd(srv));

  it("100 handshakes without a socket.io CONNECT are dropped a few seconds later", async () => {
    await handshake(srv); // warm up what the first request starts
    await new Promise((r) => setTimeout(r, 1500));
    const baseline = await metric(srv.url, "go_goroutines");
    for (let i = 0; i < 100; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => handshake(srv)));
    }
    const open = await metric(srv.url, "go_goroutines");
    assert.ok(open >= baseline + 150, `${open} goroutines with the sessions open, ${baseline} before`);
    // Each session holds 2 goroutines; dropped, it leaves none behind (the
    // library's orderly close would keep a timer of each for 30 s more).
    for (const deadline = Date.now() + 15000; (await metric(srv.url, "go_goroutines")) > baseline + 5; ) {
      assert.ok(Date.now() < deadline, "the bare sessions were not dropped within 15 s");
      await new Promise((r) => setTimeout(r, 500));
    }
  });
});
