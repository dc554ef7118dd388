// Events for the application's backend (hooks.events.*): a real HTTP
// backend started by the test receives signed batches, at least once per
// event, from one instance and from two sharing a private Redis, through
// failures, a backend outage and a chatd instance killed with events queued.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  startChatd, stopChatd, connect, ok, uid, close, closeAll, waitFor, metric,
  cleanup,
} from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";
import { startEventBackend } from "./lib/eventbackend.mjs";

const SECRET = "an-events-secret-of-at-least-32-characters";
const API_TOKEN = "an-api-token-of-at-least-32-characters-long";

/** eventsEnv is the chatd environment that sends events to backend fast. */
const eventsEnv = (backend, extra = {}) => ({
  CHATD_HOOKS_SECRET: SECRET,
  CHATD_HOOKS_EVENTS_URL: backend.url,
  CHATD_HOOKS_EVENTS_TIMEOUT: "500ms",
  CHATD_HOOKS_EVENTS_RETRY_FOR: "30s", // retries at most 1.5 s apart
  CHATD_HOOKS_EVENTS_BATCH_WAIT: "50ms",
  CHATD_API_TOKEN: API_TOKEN,
  ...extra,
});

async function post(url, room, body) {
  const res = await fetch(`${url}/api/v1/rooms/${room}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return JSON.parse(text).message;
}

/** summary is an event without its id and time, for comparing sets. */
const summary = (e) => {
  const { ts, id, ...data } = e.data;
  const all = { type: e.type, ...data, ...(id ? { messageId: id } : {}) };
  return JSON.stringify(Object.fromEntries(Object.entries(all).sort(([a], [b]) => a.localeCompare(b))));
};

/**
 * session drives a chat session over the given instances (one or two):
 * alice on the first (with a second tab on the last), bob on the last, a
 * message from each path, leaves and disconnects. It returns the event
 * summaries the backend must get, each once.
 */
async function session(urls) {
  const [A, B] = [urls[0], urls[urls.length - 1]];
  const room = uid("room");
  const alice = uid("alice");
  const bob = uid("bob");
  const { socket: a1 } = await connect(A, { auth: { userId: alice, name: "Alice" } });
  const { socket: a2 } = await connect(B, { auth: { userId: alice, name: "Alice" } });
  const { socket: b1 } = await connect(B, { auth: { userId: bob, name: "Bob" } });
  await ok(a1, "join", { room });
  await ok(b1, "join", { room });
  const m1 = (await ok(a1, "message", { room, text: "hello from a socket" })).message;
  const m2 = await post(A, room, { text: "hello from the backend", userId: "bot", name: "Bot" });
  await ok(a2, "leave", { room });
  await ok(b1, "leave", { room });
  close(a1);
  close(a2);
  close(b1);
  const msg = (m, source) => ({ type: "message.created", data: { ...m, source } });
  return [
    { type: "user.online", data: { userId: alice, name: "Alice" } },
    { type: "user.online", data: { userId: bob, name: "Bob" } },
    { type: "room.occupied", data: { room } },
    { type: "member.joined", data: { room, userId: alice, name: "Alice" } },
    { type: "member.joined", data: { room, userId: bob, name: "Bob" } },
    msg(m1, "socket"),
    msg(m2, "api"),
    { type: "member.left", data: { room, userId: alice, name: "Alice" } },
    { type: "member.left", data: { room, userId: bob, name: "Bob" } },
    { type: "room.vacated", data: { room } },
    { type: "user.offline", data: { userId: alice, name: "Alice", reason: "disconnected" } },
    { type: "user.offline", data: { userId: bob, name: "Bob", reason: "disconnected" } },
  ].map(summary);
}

/** checkOncePerId asserts that the backend got each event once, signed, and exactly want. */
function checkDelivered(backend, want) {
  assert.deepEqual(backend.problems, []);
  for (const [id, n] of backend.deliveries) assert.equal(n, 1, `event ${id} delivered ${n} times`);
  for (const e of backend.events) {
    assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Math.abs(Date.now() - e.time) < 60_000, `time ${e.time}`);
  }
  assert.deepEqual(backend.events.map(summary).sort(), [...want].sort());
}

async function startCluster(redis, ids, env) {
  const out = [];
  for (const id of ids) out.push(await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: id, CHATD_PRESENCE_TTL: "3s", ...env }));
  for (const srv of out) {
    await waitFor(`${srv.url} to see ${ids.length} nodes`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === out.length);
  }
  return out;
}

describe("events: one instance", () => {
  let backend;
  let srv;
  before(async () => {
    backend = await startEventBackend(SECRET);
    srv = await startChatd(eventsEnv(backend));
  });
  after(async () => {
    closeAll();
    await cleanup(() => stopChatd(srv), () => backend?.down());
  });

  test("a session's events arrive once per id, signed, in order, under a backend that fails the first attempts", async () => {
    backend.failNext = 2;
    const want = await session([srv.url]);
    await waitFor("every event", () => backend.events.length >= want.length);
    checkDelivered(backend, want);
    // One instance sends one batch at a time: the order is the order of
    // publication (the two offline events may come either way round).
    const types = backend.events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 10), [
      "user.online", "user.online", "room.occupied", "member.joined", "member.joined",
      "message.created", "message.created", "member.left", "member.left", "room.vacated",
    ]);
    assert.ok((await metric(srv.url, "chatd_events_retries_total")) >= 2);
    assert.ok((await metric(srv.url, 'chatd_events_failures_total{reason="status"}')) >= 2);
    await waitFor("delivered counted", async () => (await metric(srv.url, "chatd_events_delivered_total")) === want.length);
    await waitFor("an empty queue", async () => (await metric(srv.url, "chatd_events_queue_depth")) === 0);
    assert.equal(await metric(srv.url, 'chatd_events_published_total{type="message.created"}'), 2);
  });

  test("a slow backend, one answering garbage and one that is down are failures, retried, and never a crash", async () => {
    const before = backend.events.length;
    const user = uid("carol");
    for (const [mode, reason] of [["slow", "timeout"], ["garbage", "response"], ["down", "connect"]]) {
      const seen = await metric(srv.url, `chatd_events_failures_total{reason="${reason}"}`);
      if (mode === "down") await backend.down();
      else backend.mode = mode;
      if (mode === "slow") await connect(srv.url, { auth: { userId: user } }); // user.online
      await waitFor(`a ${reason} failure`, async () => (await metric(srv.url, `chatd_events_failures_total{reason="${reason}"}`)) > seen);
      const health = await fetch(srv.url + "/healthz");
      assert.equal(health.status, 200);
    }
    backend.mode = "ok";
    await backend.up();
    await waitFor("the event after the failures", () => backend.events.length > before);
    assert.deepEqual(backend.events.slice(before).map(summary), [summary({ type: "user.online", data: { userId: user, name: user } })]);
    assert.equal(srv.child.exitCode, null);
  });
});

describe("events: two instances sharing Redis", () => {
  let redis;
  let backend;
  let nodes = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    closeAll();
    await cleanup(
      ...nodes.map((n) => () => n.child.exitCode === null && n.child.signalCode === null && stopChatd(n)),
      () => backend?.down(),
      () => redis?.stop(),
    );
  });

  test("a session spread over both instances: each event once per cluster, under a backend that fails the first attempts", async () => {
    backend = await startEventBackend(SECRET);
    backend.failNext = 3;
    nodes = await startCluster(redis, ["evA", "evB"], eventsEnv(backend, { CHATD_REDIS_PREFIX: "ev1" }));
    const want = await session(nodes.map((n) => n.url));
    await waitFor("every event", () => backend.events.length >= want.length);
    checkDelivered(backend, want);
    await waitFor("an empty queue", async () => (await metric(nodes[0].url, "chatd_events_queue_depth")) === 0);
    for (const n of nodes) await stopChatd(n);
    nodes = [];
    await backend.down();
  });

  test("an instance killed with events queued while the backend is down: every event arrives, and its users are reported offline", async () => {
    const redisCli = (...args) => promisify(execFile)("redis-cli", ["-p", String(redis.port), "--raw", ...args]);
    backend = await startEventBackend(SECRET, { down: true });
    const env = eventsEnv(backend, { CHATD_REDIS_PREFIX: "ev2" });
    // A first, alone: its sender takes its events and keeps retrying them.
    const [A] = await startCluster(redis, ["killA"], env);
    nodes = [A];
    const room = uid("room");
    const alice = uid("alice");
    const { socket: a } = await connect(A.url, { auth: { userId: alice, name: "Alice" } });
    await ok(a, "join", { room });
    for (let i = 0; i < 3; i++) await ok(a, "message", { room, text: `a${i}` });
    const pendingOf = async (consumer) => {
      const { stdout } = await redisCli("XPENDING", "ev2:events", "chatd");
      const lines = stdout.trim().split("\n");
      const i = lines.indexOf(consumer);
      return i < 0 ? 0 : Number(lines[i + 1]);
    };
    await waitFor("A to hold events", async () => (await pendingOf("killA")) > 0);
    const B = await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: "killB", CHATD_PRESENCE_TTL: "3s", ...env });
    nodes.push(B);
    const bob = uid("bob");
    const { socket: b } = await connect(B.url, { auth: { userId: bob, name: "Bob" } });
    await ok(b, "join", { room });
    for (let i = 0; i < 2; i++) await ok(b, "message", { room, text: `b${i}` });
    // 10 events: 2 online, occupied, 2 joined, 5 messages.
    await waitFor("10 events queued in Redis", async () => (await metric(B.url, "chatd_events_queue_depth")) === 10);
    const { stdout } = await redisCli("XRANGE", "ev2:events", "-", "+");
    const queued = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    assert.equal(queued.length, 10);

    A.child.kill("SIGKILL");
    await A.exited;
    await backend.up();
    await waitFor("every queued event and alice offline", () =>
      queued.every((e) => backend.deliveries.has(e.id)) && backend.byType("user.offline").length > 0, 20000);
    assert.deepEqual(backend.problems, []);
    for (const e of queued) assert.equal(backend.deliveries.get(e.id), 1, `${e.type} ${e.id} delivered ${backend.deliveries.get(e.id)} times`);
    assert.deepEqual(backend.byType("user.offline").map((e) => e.data), [{ userId: alice, name: "Alice", reason: "instance_lost" }]);
    await waitFor("an empty queue", async () => (await metric(B.url, "chatd_events_queue_depth")) === 0);
    close(b);
    close(a);
  });
});
