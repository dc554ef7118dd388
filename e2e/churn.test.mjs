// Connections under churn: while other clients connect and disconnect,
// every new WebSocket connection is served, never closed by the server.
// A client that sends its first request the moment its CONNECT is
// acknowledged (as socket.io-client does with what it buffered) is the
// case that used to lose: the library had not yet recorded the namespace
// and closed the connection with status 1000.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startChatd, stopChatd, uid, waitFor, metric } from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";

const ACK_TIMEOUT_MS = 5000;

/**
 * attempt connects one socket.io-client over WebSocket, sends `rooms` at
 * once (buffered until the CONNECT is acknowledged) and resolves to null when
 * it was answered and the socket was never closed by the server, else to a
 * description of what went wrong.
 */
function attempt(url, { userId = uid("c"), join } = {}) {
  const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { userId } });
  return new Promise((resolve) => {
    let done = false;
    const finish = (problem) => {
      if (done) return;
      if (problem) problem = `${userId}: ${problem}`;
      done = true;
      socket.off("disconnect");
      socket.close();
      resolve(problem);
    };
    socket.on("connect_error", (err) => finish(`connect_error: ${err.message}`));
    socket.on("disconnect", (reason) => finish(`closed by the server after connect: ${reason}`));
    const first = join ? ["join", { room: join }] : ["rooms", {}];
    socket.timeout(ACK_TIMEOUT_MS).emit(...first, (err, ack) => {
      if (err) return finish(`no acknowledgement of ${first[0]}: ${err.message}`);
      if (!ack?.ok) return finish(`${first[0]} answered ${JSON.stringify(ack)}`);
      // A second request shows the connection still serves.
      socket.timeout(ACK_TIMEOUT_MS).emit("rooms", {}, (err2, ack2) => {
        if (err2 || !ack2?.ok) return finish(`second request failed: ${err2?.message ?? JSON.stringify(ack2)}`);
        finish(null);
      });
    });
  });
}

/** churn connects and disconnects clients in a loop until stop() and counts them. */
function churn(urls) {
  let stopped = false;
  let count = 0;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const socket = io(urls[i % urls.length], { transports: ["websocket"], forceNew: true, reconnection: false, auth: { userId: uid("churn") } });
      await new Promise((resolve) => {
        socket.once("connect", () => {
          socket.emit("rooms", {});
          socket.disconnect();
          resolve();
        });
        socket.once("connect_error", resolve);
      });
      socket.close();
      count++;
    }
  })();
  return { stop: async () => { stopped = true; await loop; return count; } };
}

async function run(urls, n, { parallel = 1, join } = {}) {
  const loops = [churn(urls), churn(urls)];
  const problems = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const p = await attempt(urls[i % urls.length], { join: join?.(i) });
      if (p) problems.push(`#${i}: ${p}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  const churned = (await Promise.all(loops.map((l) => l.stop()))).reduce((a, b) => a + b, 0);
  return { problems, churned };
}

describe("connections under churn", { timeout: 120_000 }, () => {
  describe("one instance", () => {
    let srv;
    before(async () => {
      srv = await startChatd({ CHATD_METRICS_ENABLED: "true", CHATD_LIMITS_EVENTS_PER_SECOND: "1000", CHATD_LIMITS_EVENT_BURST: "1000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0",
          // Every client here comes from 127.0.0.1: the per-address limits are for limits.test.mjs.
          CHATD_LIMITS_HANDSHAKES_PER_SECOND: "0", CHATD_LIMITS_CONNECTIONS_PER_ADDRESS: "0" });
    });
    after(() => stopChatd(srv));

    it("serves 400 sequential WebSocket connects while two loops connect and disconnect", async (t) => {
      const { problems, churned } = await run([srv.url], 400);
      t.diagnostic(`churn connections meanwhile: ${churned}`);
      assert.deepEqual(problems, []);
      assert.ok(churned > 50, `only ${churned} churn connections`);
    });

    it("counts no server-side close of a healthy client", async () => {
      const text = await (await fetch(srv.url + "/metrics")).text();
      const closes = text.split("\n").filter((l) => l.startsWith("chatd_server_closes_total{"));
      assert.ok(closes.some((l) => l.includes('reason="forced close"')), `chatd_server_closes_total is exported:\n${closes.join("\n")}`);
      for (const l of closes) assert.match(l, / 0$/, l);
    });
  });

  describe("two instances on Redis", () => {
    let redis;
    let nodes = [];
    before(async () => {
      redis = await startRedis();
      for (let i = 0; i < 2; i++) {
        nodes.push(await startChatd({
          CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: `node${i}`, CHATD_METRICS_ENABLED: "true",
          CHATD_LIMITS_EVENTS_PER_SECOND: "1000", CHATD_LIMITS_EVENT_BURST: "1000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0",
          // Every client here comes from 127.0.0.1: the per-address limits are for limits.test.mjs.
          CHATD_LIMITS_HANDSHAKES_PER_SECOND: "0", CHATD_LIMITS_CONNECTIONS_PER_ADDRESS: "0",
        }));
      }
      for (const n of nodes) await waitFor("2 nodes", async () => (await metric(n.url, "chatd_cluster_nodes")) === 2);
    });
    after(async () => {
      for (const n of nodes) await stopChatd(n);
      await redis?.stop();
    });

    it("serves 600 WebSocket clients joining 100 rooms, 20 at a time, while two loops connect and disconnect", async (t) => {
      const rooms = Array.from({ length: 100 }, () => uid("room"));
      const { problems, churned } = await run(nodes.map((n) => n.url), 600, { parallel: 20, join: (i) => rooms[i % rooms.length] });
      t.diagnostic(`churn connections meanwhile: ${churned}`);
      assert.deepEqual(problems, []);
      for (const n of nodes) {
        const text = await (await fetch(n.url + "/metrics")).text();
        for (const l of text.split("\n").filter((x) => x.startsWith("chatd_server_closes_total{"))) assert.match(l, / 0$/, `${n.url}: ${l}`);
      }
    });
  });
});
