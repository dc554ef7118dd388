// Cluster mode on a Redis Cluster that changes under traffic: three masters
// with a replica each, two chatd processes, 30 rooms with a member on each
// instance, every member sending all the time. While the messages flow, the
// slots that hold the rooms' keys (found by looking for the room names in
// the keys, whatever the key layout) and a range of 500 more move from one
// master to another with their keys, then that master hands over to its
// replica (CLUSTER FAILOVER) and another master is SIGKILLed so that its
// replica is elected. What a user must see: every acknowledged message
// once, live or from `history`; nothing twice; both instances ready again
// and messages flowing in every room soon after.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startChatd, stopChatd, connect, ok, req, uid, closeAll, waitFor, metric, cleanup } from "./lib/chatd.mjs";
import { startRedisCluster } from "./lib/rediscluster.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ROOMS = 30;
const FAST = { CHATD_LIMITS_EVENTS_PER_SECOND: "2000", CHATD_LIMITS_EVENT_BURST: "2000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0" };

/** readyz resolves to the status of GET /readyz, 0 when chatd does not answer. */
async function readyz(url) {
  try {
    const res = await fetch(url + "/readyz", { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** idOrder compares two message ids ("<ms>-<seq>") numerically. */
function idOrder(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}

/** fullHistory pages through a room's whole history with `after`, oldest first. */
async function fullHistory(socket, room) {
  const all = [];
  let after = "0-0";
  for (;;) {
    const { messages } = await ok(socket, "history", { room, after, limit: 100 });
    all.push(...messages);
    if (messages.length < 100) return all;
    after = messages[messages.length - 1].id;
  }
}

/**
 * member is one user with one socket in a room: it records every message
 * it gets live (with the time) and, while sending, every acknowledgement.
 */
function member(socket, userId, room) {
  const m = { socket, userId, room, live: [], acked: [], failed: [], errors: [], sending: null };
  socket.on("message", (msg) => m.live.push({ ...msg, at: Date.now() }));
  return m;
}

/**
 * sendLoop sends messages with a clientMsgId until stop() is true, one at a
 * time. A send that fails (an error acknowledgement or none within 5 s) is
 * sent again with the same clientMsgId, as a client would, up to three
 * times; after that the message counts as failed.
 */
async function sendLoop(m, stop) {
  for (let n = 0; !stop(); n++) {
    const clientMsgId = `${m.userId}-${n}`;
    let done = false;
    for (let attempt = 0; attempt < 3 && !done; attempt++) {
      let ack;
      try {
        ack = await req(m.socket, "message", { room: m.room, text: `n${n}`, clientMsgId });
      } catch (err) {
        ack = { ok: false, error: { code: "no_ack", message: String(err) } };
      }
      if (ack && ack.ok === true) {
        m.acked.push({ id: ack.message.id, clientMsgId, at: Date.now() });
        done = true;
      } else {
        m.errors.push({ clientMsgId, code: ack?.error?.code, at: Date.now() });
        await sleep(200);
      }
    }
    if (!done) m.failed.push(clientMsgId);
    await sleep(100);
  }
}

/** longestPause is the longest time between consecutive times in ts (and from start and to end). */
function longestPause(ts, start, end) {
  const all = [start, ...ts.filter((t) => t >= start && t <= end), end];
  let worst = 0;
  for (let i = 1; i < all.length; i++) worst = Math.max(worst, all[i] - all[i - 1]);
  return worst;
}

describe("Redis Cluster under slot moves and failovers", () => {
  let cluster;
  let nodes = [];
  before(async () => {
    cluster = await startRedisCluster(3, { replicas: 1, nodeTimeoutMs: 1000 });
    const env = { ...FAST, CHATD_REDIS_ADDRS: cluster.addrs.join(","), CHATD_REDIS_TIMEOUT: "1s" };
    for (const id of ["a", "b"]) nodes.push(await startChatd({ ...env, CHATD_INSTANCE_ID: id }));
    for (const srv of nodes) {
      await waitFor(`${srv.url} to see 2 instances`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === 2);
      assert.equal(await readyz(srv.url), 200, `${srv.url}/readyz`);
    }
  });
  after(async () => {
    closeAll();
    await cleanup(...nodes.map((n) => () => stopChatd(n)), () => cluster?.stop());
  });

  test("every acknowledged message reaches every member once, live or from history, across slot moves and failovers", { timeout: 90000 }, async () => {
    const t0 = Date.now();
    const [A, B] = nodes;
    const rooms = [];
    for (let i = 0; i < ROOMS; i++) {
      const room = uid(`chaos${i}`);
      const pair = [];
      for (const srv of [A, B]) {
        const userId = uid("u");
        const { socket } = await connect(srv.url, { auth: { userId } });
        await ok(socket, "join", { room });
        pair.push(member(socket, userId, room));
      }
      rooms.push({ room, members: pair });
    }
    const members = rooms.flatMap((r) => r.members);

    let stopping = false;
    const loops = members.map((m) => sendLoop(m, () => stopping));
    const trafficStart = Date.now();
    await sleep(1500);

    // Every room has keys by now: move the slots that hold them, and 500
    // slots besides, from the first master to the second.
    const [m1, m2, m3] = (await cluster.roles()).masters;
    const roomSlots = await cluster.slotsHolding(m1.port, rooms.map((r) => r.room));
    const range = m1.slots.slice(1000, 1500);
    const slots = [...new Set([...roomSlots, ...range])].sort((a, b) => a - b);
    const tMove = Date.now();
    const keysMoved = await cluster.moveSlots(m1.port, m2.port, slots);
    const moveMs = Date.now() - tMove;
    await sleep(500);

    // The second master, which now has those slots, hands over to its
    // replica; then the third master crashes.
    const tFailover = Date.now();
    const m2New = await cluster.failover(m2.port);
    const failoverMs = Date.now() - tFailover;
    await sleep(500);
    const tKill = Date.now();
    const m3New = await cluster.killMaster(m3.port);
    const electionMs = Date.now() - tKill;

    // Traffic goes on for a while after the faults, then stops.
    await sleep(3000);
    stopping = true;
    await Promise.all(loops);
    const trafficEnd = Date.now();
    await sleep(1000); // the last broadcasts arrive

    const { masters } = await cluster.roles();
    assert.ok(masters.some((m) => m.port === m2New), "the second master's replica took over");
    assert.ok(masters.some((m) => m.port === m3New), "the third master's replica was elected");

    // Both instances are ready again (Redis answers, the adapter is subscribed).
    for (const srv of nodes) {
      await waitFor(`${srv.url}/readyz to answer 200`, async () => (await readyz(srv.url)) === 200, 15000);
    }

    // Messages flow again in every room, both ways: a probe from each
    // member reaches the other live, within a bounded time.
    const tProbe = Date.now();
    const stuck = [];
    await Promise.all(rooms.map(async ({ room, members: [x, y] }) => {
      for (const [from, to] of [[x, y], [y, x]]) {
        const deadline = Date.now() + 15000;
        let arrived = false;
        let last;
        while (!arrived && Date.now() < deadline) {
          last = await req(from.socket, "message", { room, text: "probe" }).catch((err) => ({ error: String(err) }));
          if (!last?.ok) {
            await sleep(200);
            continue;
          }
          const until = Date.now() + 2000;
          while (!arrived && Date.now() < until) {
            arrived = to.live.some((m) => m.id === last.message.id);
            if (!arrived) await sleep(25);
          }
        }
        if (!arrived) stuck.push(`${room}: ${from === x ? "A to B" : "B to A"} (last ack ${JSON.stringify(last)})`);
      }
    }));
    const probeMs = Date.now() - tProbe;
    assert.deepEqual(stuck, [], `rooms where no message arrives live 15 s after the faults; chatd a:\n${A.output().slice(-4000)}\nchatd b:\n${B.output().slice(-4000)}`);

    // What each user saw.
    let acked = 0;
    let failedSends = 0;
    let errorAcks = 0;
    let missedLive = 0;
    let worstSendPause = 0;
    let worstLivePause = 0;
    for (const { room, members: pair } of rooms) {
      const history = await fullHistory(pair[0].socket, room);
      const ids = history.map((m) => m.id);
      assert.deepEqual([...ids].sort(idOrder), ids, `${room}: history in id order`);
      assert.equal(new Set(ids).size, ids.length, `${room}: no id twice in history`);
      // One clientMsgId from one user is one message, however often it was sent.
      const byClientId = new Map();
      for (const m of history) {
        if (!m.clientMsgId) continue;
        const key = `${m.userId}/${m.clientMsgId}`;
        assert.ok(!byClientId.has(key), `${room}: ${key} stored twice (${byClientId.get(key)} and ${m.id})`);
        byClientId.set(key, m.id);
      }
      const inHistory = new Set(ids);
      for (const [me, other] of [[pair[0], pair[1]], [pair[1], pair[0]]]) {
        acked += me.acked.length;
        failedSends += me.failed.length;
        errorAcks += me.errors.length;
        worstSendPause = Math.max(worstSendPause, longestPause(me.acked.map((a) => a.at), trafficStart, trafficEnd));
        // Every acknowledged message is kept, under the id its sender got,
        // and a retried clientMsgId answered the first message's id.
        for (const a of me.acked) {
          assert.ok(inHistory.has(a.id), `${room}: ${me.userId}'s acknowledged ${a.id} (${a.clientMsgId}) is in history`);
          assert.equal(byClientId.get(`${me.userId}/${a.clientMsgId}`), a.id, `${room}: ${a.clientMsgId} has the id its sender got`);
        }
        // Nothing twice live; the other member's messages in the order sent.
        const liveIds = other.live.filter((m) => m.text !== "probe").map((m) => m.id);
        assert.equal(new Set(liveIds).size, liveIds.length, `${room}: ${other.userId} got a message twice live`);
        const fromMe = other.live.filter((m) => m.userId === me.userId && m.text !== "probe").map((m) => m.id);
        assert.deepEqual([...fromMe].sort(idOrder), fromMe, `${room}: ${other.userId} got ${me.userId}'s messages in order`);
        for (const id of liveIds) assert.ok(inHistory.has(id), `${room}: ${id}, delivered live, is in history`);
        // What the other member missed live, history has: together every
        // acknowledged message exactly once.
        const seen = new Set(liveIds);
        const missed = me.acked.filter((a) => !seen.has(a.id));
        missedLive += missed.length;
        const merged = new Set([...liveIds, ...history.filter((m) => m.userId === me.userId).map((m) => m.id)]);
        for (const a of me.acked) assert.ok(merged.has(a.id), `${room}: ${other.userId} has ${a.id} live or from history`);
        worstLivePause = Math.max(worstLivePause, longestPause(other.live.map((m) => m.at), trafficStart, trafficEnd));
      }
    }
    assert.ok(acked > 1000, `enough traffic to mean something: ${acked} acknowledged messages`);
    // The longest a room went without a message arriving live: the
    // election of the crashed master's replica (node timeout 1 s) and
    // chatd finding it. The bound is far below go-redis's own 60 s
    // refresh of its slot map.
    assert.ok(worstLivePause < 15000, `no room goes ${worstLivePause} ms without a live message`);

    // Which fault the error acknowledgements came with.
    const phases = [["before", trafficStart], ["move", tMove], ["failover", tFailover], ["kill", tKill], ["after", tKill + electionMs]];
    const errorsBy = {};
    for (const e of members.flatMap((m) => m.errors)) {
      const phase = phases.findLast(([, t]) => e.at >= t)?.[0] ?? "before";
      const key = `${phase}:${e.code}`;
      errorsBy[key] = (errorsBy[key] ?? 0) + 1;
    }
    // The numbers behind the verdict, the pauses above all.
    console.log(JSON.stringify({
      rooms: ROOMS, acked, errorAcks, failedSends, missedLive, errorsBy,
      slotsMoved: slots.length, roomSlots: roomSlots.length, keysMoved, moveMs, failoverMs, electionMs,
      worstSendPauseMs: worstSendPause, worstLivePauseMs: worstLivePause, probeMs,
      totalMs: Date.now() - t0,
    }));
  });
});
