// Cluster mode: three chatd processes sharing a private redis-server, with
// clients (the official socket.io-client) spread over them.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startChatd, stopChatd, connect, ok, req, nextEvent, uid, close, closeAll, sorted, presenceOf,
  DEFAULT_TIMEOUT_MS, waitFor, metric,
} from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function status(url, path) {
  try {
    const res = await fetch(url + path, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** collect records every `message` a socket receives. */
function collect(socket) {
  const got = [];
  socket.on("message", (m) => got.push(m));
  return got;
}

async function startCluster(redis, n, env = {}) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: `node${i}`, ...env }));
  }
  // Every instance must see the others before cross-instance requests count them.
  for (const srv of out) {
    await waitFor(`${srv.url} to see ${n} nodes`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === n);
  }
  return out;
}

describe("cluster: the contract across three instances", () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 3, { CHATD_PRESENCE_TTL: "3s", CHATD_LIMITS_EVENTS_PER_SECOND: "1000", CHATD_LIMITS_EVENT_BURST: "1000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0" });
  });
  after(async () => {
    closeAll();
    for (const n of nodes ?? []) await stopChatd(n);
    await redis?.stop();
  });

  test("a join on one instance puts the user's sockets on every instance in the room", async () => {
    const [A, B, C] = nodes;
    const alice = uid("alice");
    const room = uid("room");
    const { socket: a1 } = await connect(A.url, { auth: { userId: alice } });
    const { socket: a2 } = await connect(B.url, { auth: { userId: alice } });
    const { socket: bob } = await connect(C.url, { auth: { userId: uid("bob") } });
    await ok(a1, "join", { room });
    await ok(bob, "join", { room });
    const sent = await ok(bob, "message", { room, text: "hello" });
    assert.deepEqual(await nextEvent(a2, "message", { filter: (m) => m.id === sent.message.id }), sent.message);
    assert.deepEqual(await nextEvent(a1, "message", { filter: (m) => m.id === sent.message.id }), sent.message);
    for (const s of [a1, a2]) assert.deepEqual((await ok(s, "rooms", {})).rooms, [room]);
    // A new tab on the third instance starts in the room.
    const { session } = await connect(C.url, { auth: { userId: alice } });
    assert.deepEqual(session.rooms, [room]);
    await ok(a2, "leave", { room });
    const after = await ok(bob, "message", { room, text: "after leave" });
    for (const s of [a1, a2]) {
      await assert.rejects(nextEvent(s, "message", { filter: (m) => m.id === after.message.id, timeoutMs: 500 }));
    }
  });

  test("a message sent on A reaches the members on A, B and C exactly once, in order", async () => {
    const [A, B, C] = nodes;
    const room = uid("room");
    const users = [[A, uid("s")], [A, uid("r")], [B, uid("r")], [C, uid("r")], [C, uid("r")]];
    const socks = [];
    for (const [node, user] of users) {
      const { socket } = await connect(node.url, { auth: { userId: user } });
      await ok(socket, "join", { room });
      socks.push(socket);
    }
    const [sender, ...receivers] = socks;
    const inboxes = receivers.map(collect);
    const senderInbox = collect(sender);
    const ids = [];
    for (let i = 0; i < 50; i++) ids.push((await ok(sender, "message", { room, text: `m${i}` })).message.id);
    await waitFor("every receiver to get 50 messages", () => inboxes.every((got) => got.length >= 50));
    await sleep(300); // a duplicate would arrive right behind the originals
    for (const got of inboxes) assert.deepEqual(got.map((m) => m.id), ids, "each message once, in order");
    assert.equal(senderInbox.length, 0, "the sending socket gets no copy");
  });

  test("presence, rooms and history answer the same on every instance", async () => {
    const room = uid("room");
    const names = [uid("p"), uid("q"), uid("r")];
    const socks = [];
    for (let i = 0; i < 3; i++) {
      const { socket } = await connect(nodes[i].url, { auth: { userId: names[i] } });
      await ok(socket, "join", { room });
      socks.push(socket);
    }
    for (let i = 0; i < 9; i++) await ok(socks[i % 3], "message", { room, text: `h${i}` });
    const answers = [];
    for (const s of socks) {
      const presence = (await ok(s, "presence", { room })).users.map((u) => u.userId);
      const history = (await ok(s, "history", { room })).messages.map((m) => m.id);
      answers.push({ presence: sorted(presence), history });
    }
    assert.deepEqual(answers[0].presence, sorted(names));
    assert.equal(answers[0].history.length, 9);
    assert.deepEqual(answers[1], answers[0]);
    assert.deepEqual(answers[2], answers[0]);
    const ids = answers[0].history;
    assert.deepEqual(ids, [...ids].sort((a, b) => {
      const [am, as] = a.split("-").map(BigInt); const [bm, bs] = b.split("-").map(BigInt);
      return am === bm ? (as < bs ? -1 : 1) : (am < bm ? -1 : 1);
    }), "ids sort in storage order across instances");
  });
});

describe("cluster: Redis goes away and comes back", () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 2, { CHATD_REDIS_TIMEOUT: "500ms" });
  });
  after(async () => {
    closeAll();
    for (const n of nodes ?? []) await stopChatd(n);
    await redis?.stop();
  });

  test("instances stay up, report 503, answer unavailable, then resume fan-out", async () => {
    const [A, B] = nodes;
    const room = uid("room");
    const { socket: a } = await connect(A.url, { auth: { userId: uid("a") } });
    const { socket: b } = await connect(B.url, { auth: { userId: uid("b") } });
    await ok(a, "join", { room });
    await ok(b, "join", { room });
    const baseline = await metric(A.url, "go_goroutines");
    for (let outage = 0; outage < 3; outage++) {
      await redis.stop();
      await waitFor("A's /readyz to say 503", async () => (await status(A.url, "/readyz")) === 503);
      assert.equal(await status(A.url, "/healthz"), 200, "the process still serves");
      const started = Date.now();
      const ack = await req(a, "message", { room, text: "while redis is down" });
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, "unavailable");
      assert.ok(Date.now() - started < DEFAULT_TIMEOUT_MS, "answered within the request timeout");
      await redis.start();
      await waitFor("both /readyz to say 200", async () =>
        (await status(A.url, "/readyz")) === 200 && (await status(B.url, "/readyz")) === 200);
      const sent = await waitFor("a send to succeed again", async () => {
        const r = await req(a, "message", { room, text: `back ${outage}` });
        return r.ok ? r : null;
      });
      assert.equal((await nextEvent(b, "message", { filter: (m) => m.id === sent.message.id, timeoutMs: 10000 })).text,
        `back ${outage}`, "cross-instance fan-out resumed");
    }
    // Goroutines return to about the baseline: no growth per outage.
    const now = await waitFor("goroutines to settle", async () => {
      const g = await metric(A.url, "go_goroutines");
      return g <= baseline + 10 ? g : null;
    });
    assert.ok(now <= baseline + 10, `goroutines ${baseline} -> ${now}`);
  });
});

describe("cluster: an instance killed with SIGKILL", () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 3, { CHATD_PRESENCE_TTL: "3s", CHATD_LIMITS_EVENTS_PER_SECOND: "1000", CHATD_LIMITS_EVENT_BURST: "1000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0" });
  });
  after(async () => {
    closeAll();
    for (const n of nodes.slice(0, 2)) await stopChatd(n);
    await redis?.stop();
  });

  test("its clients reconnect elsewhere with their rooms and fetch exactly what they missed", async () => {
    const [A, B, C] = nodes;
    const room = uid("room");
    const sender = uid("sender");
    const { socket: s } = await connect(A.url, { auth: { userId: sender } });
    await ok(s, "join", { room });
    const victims = [];
    for (let i = 0; i < 4; i++) {
      const user = uid("v");
      const { socket } = await connect(C.url, { auth: { userId: user } });
      await ok(socket, "join", { room });
      victims.push({ user, socket, got: collect(socket) });
    }
    const { socket: watcher } = await connect(B.url, { auth: { userId: uid("w") } });
    await ok(watcher, "join", { room });
    const watched = collect(watcher);

    const total = 300;
    const ids = [];
    for (let i = 0; i < total; i++) {
      if (i === 100) C.child.kill("SIGKILL");
      ids.push((await ok(s, "message", { room, text: `k${i}` })).message.id);
    }
    await C.exited;
    await waitFor("the watcher to get every message", () => watched.length >= total);
    assert.deepEqual(watched.map((m) => m.id), ids);

    for (const v of victims) {
      // The load balancer would send the reconnect to a live instance.
      const { socket, session } = await connect(B.url, { auth: { userId: v.user } });
      assert.deepEqual(session.rooms, [room], "session lists the rooms");
      const seen = v.got.map((m) => m.id);
      let cursor = seen.at(-1);
      const fetched = [];
      for (;;) {
        const page = await ok(socket, "history", cursor ? { room, after: cursor, limit: 100 } : { room, limit: 100 });
        fetched.push(...page.messages.map((m) => m.id));
        if (page.messages.length < 100) break;
        cursor = page.messages.at(-1).id;
      }
      const all = [...seen, ...fetched];
      assert.equal(new Set(all).size, all.length, "no message twice");
      assert.deepEqual(all, ids, "received + fetched = every message, in order");
      await close(socket);
    }
  });

  test("users whose only socket was on a killed instance go offline within the presence TTL", async () => {
    const [A, B] = nodes;
    const room = uid("room");
    const { socket: a } = await connect(A.url, { auth: { userId: uid("a") } });
    await ok(a, "join", { room });
    // C is gone; start a fourth instance, connect a user there, and kill it.
    const D = await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: "node3", CHATD_PRESENCE_TTL: "3s" });
    const doomed = uid("d");
    const { socket: d } = await connect(D.url, { auth: { userId: doomed } });
    await ok(d, "join", { room });
    assert.ok((await ok(a, "presence", { room })).users.some((u) => u.userId === doomed));
    D.child.kill("SIGKILL");
    await D.exited;
    await nextEvent(a, "presence", { filter: presenceOf(room, doomed, "offline"), timeoutMs: 20000 });
    assert.ok(!(await ok(a, "presence", { room })).users.some((u) => u.userId === doomed));
    void B;
  });
});
