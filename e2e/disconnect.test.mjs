// An explicit disconnect is never recovered: socket.disconnect() (a
// socket.io DISCONNECT, then the close at once) followed by connect() gives
// a fresh session, a new socket id and nothing replayed, on every
// transport, on one instance and on two sharing Redis; a log-out and log-in
// (new auth) comes back as the new user. Recovery of a real transport
// close still works (recovery.test.mjs).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { TRANSPORTS, startChatd, stopChatd, connect, ok, uid, closeAll, waitFor, metric } from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";

const CYCLES = 40;
const FAST = { CHATD_LIMITS_EVENTS_PER_SECOND: "2000", CHATD_LIMITS_EVENT_BURST: "2000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0", CHATD_RECOVERY_MAX_DISCONNECTION: "2m" };

function session(socket) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no session event")), 5000);
    socket.once("session", (s) => {
      clearTimeout(t);
      resolve(s);
    });
  });
}

/** cycles disconnects and reconnects one socket.io-client and resolves to how many sessions came back recovered. */
async function cycles(urls, transports, { relogin = false } = {}) {
  const room = uid("room");
  const alice = uid("alice");
  const { socket: sender } = await connect(urls[0], { auth: { userId: uid("sender") }, transports });
  await ok(sender, "join", { room });
  const socket = io(urls[urls.length - 1], { transports, forceNew: true, reconnection: false, auth: { userId: alice } });
  let s = await session(socket);
  await ok(socket, "join", { room });
  let recovered = 0;
  let wrongUser = 0;
  for (let i = 0; i < CYCLES; i++) {
    // An event with an offset, so that the client asks for recovery.
    const got = new Promise((resolve) => {
      const on = (m) => {
        if (m.room !== room) return;
        socket.off("message", on);
        resolve();
      };
      socket.on("message", on);
    });
    await ok(sender, "message", { room, text: `m${i}` });
    await got;
    const user = relogin && i % 2 === 0 ? uid("bob") : alice;
    socket.auth = { userId: user };
    const oldId = s.socketId;
    socket.disconnect();
    const next = session(socket);
    socket.connect();
    s = await next;
    if (s.recovered || s.socketId === oldId) recovered++;
    if (s.userId !== user) wrongUser++;
    if (!s.rooms.includes(room)) await ok(socket, "join", { room });
  }
  socket.close();
  return { recovered, wrongUser };
}

for (const mode of ["one instance", "two instances on Redis"]) {
  describe(`explicit disconnect, ${mode}`, { timeout: 120_000 }, () => {
    let redis;
    const nodes = [];
    before(async () => {
      if (mode === "one instance") {
        nodes.push(await startChatd(FAST));
        return;
      }
      redis = await startRedis();
      for (let i = 0; i < 2; i++) nodes.push(await startChatd({ ...FAST, CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: `d${i}`, CHATD_METRICS_ENABLED: "true" }));
      for (const n of nodes) await waitFor("2 nodes", async () => (await metric(n.url, "chatd_cluster_nodes")) === 2);
    });
    after(async () => {
      closeAll();
      for (const n of nodes) await stopChatd(n);
      await redis?.stop();
    });

    for (const transports of TRANSPORTS) {
      it(`is never recovered over ${transports[0]}, ${CYCLES} disconnect() and connect() cycles`, async (t) => {
        const { recovered } = await cycles(nodes.map((n) => n.url), transports);
        t.diagnostic(`recovered ${recovered} of ${CYCLES}`);
        assert.equal(recovered, 0);
      });
    }

    it(`gives a log-out and log-in the new user, ${CYCLES} cycles over websocket`, async (t) => {
      const { recovered, wrongUser } = await cycles(nodes.map((n) => n.url), ["websocket"], { relogin: true });
      t.diagnostic(`recovered ${recovered}, wrong user ${wrongUser} of ${CYCLES}`);
      assert.equal(wrongUser, 0);
      assert.equal(recovered, 0);
    });
  });
}
