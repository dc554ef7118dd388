// Cluster mode on the Redis topologies chatd supports besides a single
// server: a Redis Cluster of three masters (CHATD_REDIS_ADDRS = the nodes)
// and Redis Sentinel (CHATD_REDIS_ADDRS = the Sentinel,
// CHATD_REDIS_MASTER_NAME). Two chatd processes each, clients on both.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startChatd, stopChatd, connect, ok, nextEvent, uid, closeAll, sorted, byId, waitFor, metric } from "./lib/chatd.mjs";
import { startRedisCluster, startRedisSentinel } from "./lib/rediscluster.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** startPair starts two chatd on the Redis that env names and waits until each is ready and sees the other. */
async function startPair(env) {
  const nodes = [];
  for (const id of ["a", "b"]) nodes.push(await startChatd({ ...env, CHATD_INSTANCE_ID: id }));
  for (const srv of nodes) {
    await waitFor(`${srv.url} to see 2 instances`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === 2);
    const res = await fetch(srv.url + "/readyz");
    await res.arrayBuffer();
    assert.equal(res.status, 200, `${srv.url}/readyz`);
  }
  return nodes;
}

const topologies = [
  {
    name: "Redis Cluster (three masters)",
    async start() {
      const redis = await startRedisCluster(3);
      return { redis, env: { CHATD_REDIS_ADDRS: redis.addrs.join(",") } };
    },
  },
  {
    name: "Redis Sentinel",
    async start() {
      const redis = await startRedisSentinel("m");
      return { redis, env: { CHATD_REDIS_ADDRS: redis.addr, CHATD_REDIS_MASTER_NAME: "m" } };
    },
  },
];

for (const topology of topologies) {
  describe(`cluster mode on ${topology.name}`, () => {
    let redis;
    let nodes = [];
    before(async () => {
      let env;
      ({ redis, env } = await topology.start());
      nodes = await startPair({ ...env, CHATD_LIMITS_EVENTS_PER_SECOND: "1000", CHATD_LIMITS_EVENT_BURST: "1000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0" });
    });
    after(async () => {
      closeAll();
      for (const n of nodes) await stopChatd(n);
      await redis?.stop();
    });

    test("users on two instances talk in a room, in order, and see the same history and presence", async () => {
      const [A, B] = nodes;
      const room = uid("room");
      const alice = uid("alice");
      const bob = uid("bob");
      const { socket: a } = await connect(A.url, { auth: { userId: alice } });
      const { socket: b } = await connect(B.url, { auth: { userId: bob } });
      await ok(a, "join", { room });
      await ok(b, "join", { room });

      const fromA = await ok(a, "message", { room, text: "hello from A" });
      assert.deepEqual(await nextEvent(b, "message", { filter: byId(fromA.message.id) }), fromA.message);
      const fromB = await ok(b, "message", { room, text: "hello from B" });
      assert.deepEqual(await nextEvent(a, "message", { filter: byId(fromB.message.id) }), fromB.message);

      // Messages sent one after the other arrive on B in the order sent.
      const got = [];
      b.on("message", (m) => got.push(m.id));
      const ids = [];
      for (let i = 0; i < 20; i++) ids.push((await ok(a, "message", { room, text: `m${i}` })).message.id);
      await waitFor("bob to get the 20 messages", () => got.length >= ids.length);
      assert.deepEqual(got, ids, "each message once, in the order sent");

      // A burst, sent without waiting for the acknowledgements, reaches a
      // member on A and a member on B in one and the same order.
      const dave = uid("dave");
      const { socket: a2 } = await connect(A.url, { auth: { userId: dave } });
      await ok(a2, "join", { room });
      const onA = [];
      a2.on("message", (m) => onA.push(m.id));
      got.length = 0;
      const burst = await Promise.all(Array.from({ length: 25 }, (_, i) => ok(a, "message", { room, text: `b${i}` })));
      await waitFor("both members to get the burst", () => got.length >= burst.length && onA.length >= burst.length);
      assert.deepEqual(sorted(got), sorted(burst.map((x) => x.message.id)), "each message once");
      assert.deepEqual(got, onA, "the member on B gets the burst in the order the member on A does");

      const answers = [];
      for (const s of [a, b]) {
        const presence = (await ok(s, "presence", { room })).users.map((u) => u.userId);
        const history = (await ok(s, "history", { room })).messages.map((m) => m.id);
        answers.push({ presence: sorted(presence), history });
      }
      assert.deepEqual(answers[0].presence, sorted([alice, bob, dave]));
      const history = answers[0].history;
      assert.deepEqual(history.slice(0, 22), [fromA.message.id, fromB.message.id, ...ids]);
      assert.deepEqual(sorted(history.slice(22)), sorted(onA));
      assert.deepEqual(answers[1], answers[0], "both instances answer the same");
    });

    test("a join on one instance puts the user's tab on the other in the room", async () => {
      const [A, B] = nodes;
      const room = uid("room");
      const alice = uid("alice");
      const { socket: onA } = await connect(A.url, { auth: { userId: alice } });
      const { socket: onB } = await connect(B.url, { auth: { userId: alice } });
      const { socket: carol } = await connect(B.url, { auth: { userId: uid("carol") } });
      await ok(carol, "join", { room });
      await ok(onA, "join", { room });
      const sent = await ok(carol, "message", { room, text: "to alice's two tabs" });
      for (const s of [onA, onB]) {
        assert.deepEqual(await nextEvent(s, "message", { filter: byId(sent.message.id) }), sent.message);
      }
      assert.deepEqual((await ok(onB, "rooms", {})).rooms, [room]);
    });
  });
}
