// Connection state recovery: a client whose connection is cut comes back,
// usually on another instance, and either resumes its session (same socket
// id, every missed `message` replayed once, in order, socket.recovered) or
// gets a fresh session with its rooms and fills the gap with `history`.
//
// Clients reach chatd through a TCP proxy that the test cuts (the client sees
// "transport close" and reconnects by itself) and then points at another
// instance, as a load balancer would.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  startChatd, stopChatd, connect, ok, nextEvent, waitDisconnect, uid, closeAll,
  assertServes, presenceOf, NEGATIVE_WINDOW_MS, waitFor, metric,
} from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";
import { tcpProxy } from "./lib/proxy.mjs";
import { RawSocket } from "./lib/raw.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CUT_MS is how long a cut client stays away at least, in milliseconds. */
const CUT_MS = 1500;

/** FAST is the environment that lets one test socket send a few hundred messages at once. */
const FAST = { CHATD_LIMITS_EVENTS_PER_SECOND: "2000", CHATD_LIMITS_EVENT_BURST: "2000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0" };

/** redisCli runs one redis-cli command against the test's Redis and resolves to its output. */
function redisCli(redis, ...args) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", ["-p", String(redis.port), ...args], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

/**
 * startCluster starts n instances on one Redis under a fresh key prefix and
 * waits until each counts them all.
 */
async function startCluster(redis, n, env = {}) {
  const prefix = uid("rec");
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_REDIS_PREFIX: prefix, CHATD_INSTANCE_ID: `rec${i}`, ...env }));
  }
  for (const srv of nodes) {
    await waitFor(`${srv.url} to see ${n} nodes`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === n);
  }
  nodes.prefix = prefix;
  return nodes;
}

/**
 * Scene is one cut: alice reaches chatd through a proxy, bob (on another
 * instance) shares her room and talks while she is away.
 */
class Scene {
  static async open({ entry, bobAt, transports = ["websocket"] }) {
    const sc = new Scene();
    sc.transports = transports;
    sc.room = uid("room");
    sc.proxy = await tcpProxy(entry.port);
    sc.aliceId = uid("alice");
    const { socket, session } = await connect(sc.proxy.url, {
      auth: { userId: sc.aliceId },
      transports,
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      randomizationFactor: 0,
    });
    sc.alice = socket;
    sc.first = session;
    sc.got = [];
    socket.on("message", (m) => sc.got.push(m));
    sc.typing = [];
    socket.on("typing", (t) => sc.typing.push(t));
    ({ socket: sc.bob } = await connect(bobAt.url, { auth: { userId: uid("bob") } }));
    await ok(sc.alice, "join", { room: sc.room });
    await ok(sc.bob, "join", { room: sc.room });
    // One message both saw before the cut: the point history resumes from.
    const seen = await ok(sc.bob, "message", { room: sc.room, text: "before the cut" });
    await nextEvent(sc.alice, "message", { filter: (m) => m.id === seen.message.id });
    sc.lastSeen = seen.message.id;
    sc.gotBefore = sc.got.length;
    return sc;
  }

  /**
   * cut drops alice's connection and refuses her reconnects. With
   * persisted, it waits until her instance has handled the drop (bob sees
   * her go offline), which is when it stores her session. Over long-polling
   * it cuts while a poll is pending: an instance notices a client gone
   * between two polls only at its heartbeat timeout.
   */
  async cut({ persisted = true } = {}) {
    if (this.transports.includes("polling")) await waitFor("a pending long-poll", () => this.proxy.pollPending());
    const gone = persisted ? nextEvent(this.bob, "presence", { filter: presenceOf(this.room, this.aliceId, "offline") }) : null;
    this.proxy.point(null);
    this.cutAt = Date.now();
    await waitDisconnect(this.alice);
    if (gone) await gone;
  }

  /** send has bob send n messages to the room and resolves to them, in order. */
  async send(n, label = "missed") {
    const acks = await Promise.all(
      Array.from({ length: n }, (_, i) => ok(this.bob, "message", { room: this.room, text: `${label} ${i + 1}` })),
    );
    return acks.map((a) => a.message);
  }

  /** reconnect lets alice back in, to target, after at least CUT_MS away, and resolves to her new session. */
  async reconnect(target) {
    const next = nextEvent(this.alice, "session", { timeoutMs: 15000 });
    await sleep(Math.max(0, CUT_MS - (Date.now() - this.cutAt)));
    this.proxy.point(target.port);
    return next;
  }

  /** received is what alice got since the cut began. */
  received() {
    return this.got.slice(this.gotBefore);
  }

  /** history pages through `history` after lastSeen. */
  async historyAfter() {
    const out = [];
    let after = this.lastSeen;
    for (;;) {
      const page = await ok(this.alice, "history", { room: this.room, after, limit: 100 });
      assert.notEqual(page.gap, true, "history after the last seen message has a gap");
      out.push(...page.messages);
      if (page.messages.length < 100) return out;
      after = page.messages.at(-1).id;
    }
  }

  /** close closes the clients and the proxy. */
  async close() {
    this.alice?.close();
    this.bob?.close();
    await this.proxy?.close();
  }
}

const ids = (ms) => ms.map((m) => m.id);

/** assertRecovered checks a resumed session: same socket, same rooms, recovered on both sides. */
function assertRecovered(sc, session) {
  assert.equal(session.recovered, true, `session ${JSON.stringify(session)}`);
  assert.equal(sc.alice.recovered, true, "socket.recovered on the client");
  assert.equal(session.socketId, sc.first.socketId, "the same socket id");
  assert.equal(sc.alice.id, sc.first.socketId);
  assert.equal(session.userId, sc.aliceId);
  assert.ok(session.rooms.includes(sc.room), `rooms ${JSON.stringify(session.rooms)}`);
}

/**
 * assertShortCutRecovers is the control of a fallback test: on the same
 * settings, a cut during which only n messages are sent does recover.
 */
async function assertShortCutRecovers(entry, other, n) {
  const ctl = await Scene.open({ entry, bobAt: other });
  try {
    await ctl.cut();
    const missed = await ctl.send(n);
    assertRecovered(ctl, await ctl.reconnect(other));
    assert.deepEqual(ids(ctl.received()), ids(missed));
  } finally {
    await ctl.close();
  }
}

/** assertFresh checks a fresh session that kept the user's rooms and can catch up from history. */
async function assertFresh(sc, session, missed) {
  assert.equal(session.recovered, false, `session ${JSON.stringify(session)}`);
  assert.ok(!sc.alice.recovered, "socket.recovered on the client");
  assert.notEqual(session.socketId, sc.first.socketId, "a fresh session has a new socket id");
  assert.equal(session.userId, sc.aliceId);
  assert.ok(session.rooms.includes(sc.room), `rooms ${JSON.stringify(session.rooms)}`);
  assert.deepEqual(ids(sc.received()), [], "nothing is replayed into a fresh session");
  assert.deepEqual(ids(await sc.historyAfter()), ids(missed), "history after the last seen message is what was missed");
}

/**
 * assertLive checks that the conversation goes on: a new message from bob
 * reaches alice. It resolves to that message once a duplicate would have
 * arrived too.
 */
async function assertLive(sc) {
  const [live] = await sc.send(1, "live");
  await nextEvent(sc.alice, "message", { filter: (m) => m.id === live.id });
  await sleep(NEGATIVE_WINDOW_MS);
  return live;
}

describe("recovery across a cluster", () => {
  let redis;
  let nodes; // [A, B, C]: alice mostly starts on A and comes back on B; bob is on C
  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 3, { ...FAST, CHATD_SHUTDOWN_DRAIN: "500ms" });
  });
  after(async () => {
    closeAll();
    for (const n of nodes ?? []) if (n.child.exitCode === null && n.child.signalCode === null) await stopChatd(n);
    await redis?.stop();
  });

  for (const transports of [["websocket"], ["polling"]]) {
    test(`over ${transports[0]}: cut on A, back on B, every missed message once, in order`, async () => {
      const [A, B, C] = nodes;
      const sc = await Scene.open({ entry: A, bobAt: C, transports });
      try {
        await sc.cut();
        const missed = await sc.send(5);
        // Typing is volatile: sent while alice is away, never replayed.
        await ok(sc.bob, "typing", { room: sc.room, typing: true });
        const session = await sc.reconnect(B);
        assertRecovered(sc, session);
        assert.deepEqual(ids(sc.received()), ids(missed), "every missed message once, in order, before `session`");
        assert.deepEqual(sc.received().map((m) => m.text), missed.map((m) => m.text));
        const live = await assertLive(sc);
        assert.deepEqual(ids(sc.received()), [...ids(missed), live.id], "nothing delivered twice");
        assert.deepEqual(sc.typing, [], "typing sent during the cut is not replayed");
        // Alice is on B now, in her room: her messages reach bob.
        const back = await ok(sc.alice, "message", { room: sc.room, text: "back" });
        await nextEvent(sc.bob, "message", { filter: (m) => m.id === back.message.id });
        const rooms = await ok(sc.alice, "rooms", {});
        assert.ok(rooms.rooms.includes(sc.room));
      } finally {
        await sc.close();
      }
    });
  }

  test("forged pid and offset in CONNECT give a fresh session and leave the real session alone", async () => {
    const [A, B, C] = nodes;
    const sc = await Scene.open({ entry: A, bobAt: C });
    const raws = [];
    try {
      await sc.cut();
      const missed = await sc.send(3);
      const pid = sc.alice._pid;
      assert.ok(pid, "the client holds a private session id");
      const attempts = [
        { pid: "forged" + "x".repeat(10), offset: sc.alice._lastOffset },
        { pid, offset: "../../x" },
        { pid, offset: "1-1" },
        { pid, offset: "0-0" },
        { pid, offset: "9".repeat(40000) },
        { pid: "p".repeat(40000), offset: sc.alice._lastOffset },
        { pid: 12345, offset: { $gt: "" } },
        { pid: [pid], offset: [sc.alice._lastOffset] },
      ];
      for (const [i, forged] of attempts.entries()) {
        const raw = await RawSocket.open((i % 2 ? B : A).url);
        raws.push(raw);
        const mallory = uid("mallory");
        const session = await raw.handshake({ userId: mallory, ...forged });
        assert.equal(session.recovered, false, `attempt ${i}: ${JSON.stringify(session).slice(0, 200)}`);
        assert.equal(session.userId, mallory, `attempt ${i} runs as its own user`);
        assert.notEqual(session.socketId, sc.first.socketId, `attempt ${i} did not take alice's socket`);
        assert.deepEqual(session.rooms, [], `attempt ${i} is in no room`);
        await raw.close();
      }
      // None of it touched alice's session: she still resumes it.
      const session = await sc.reconnect(B);
      assertRecovered(sc, session);
      assert.deepEqual(ids(sc.received()), ids(missed));
      await assertServes(A);
      await assertServes(B);
    } finally {
      for (const r of raws) await r.close();
      await sc.close();
    }
  });

  test("rooms the user left while away are left on resume", async () => {
    const [A, B, C] = nodes;
    const sc = await Scene.open({ entry: A, bobAt: C });
    const other = uid("room");
    try {
      const { socket: tab } = await connect(C.url, { auth: { userId: sc.aliceId } });
      await ok(sc.alice, "join", { room: other });
      await ok(sc.bob, "join", { room: other });
      // Alice stays online in another tab, so wait for the stored session.
      await sc.cut({ persisted: false });
      const key = `${nodes.prefix}:session:${sc.alice._pid}`;
      await waitFor("alice's session to be stored", async () => (await redisCli(redis, "EXISTS", key)) === "1");
      await ok(tab, "leave", { room: other });
      const session = await sc.reconnect(B);
      assertRecovered(sc, session);
      assert.deepEqual(session.rooms, [sc.room]);
      assert.deepEqual((await ok(sc.alice, "rooms", {})).rooms, [sc.room]);
      const outside = await ok(sc.bob, "message", { room: other, text: "after alice left" });
      const live = await assertLive(sc);
      assert.ok(!sc.received().some((m) => m.id === outside.message.id), "a message of a room alice left reached her");
      assert.equal(sc.received().at(-1).id, live.id);
    } finally {
      await sc.close();
    }
  });

  // The last two tests stop A, then kill B.
  test("a draining instance (SIGTERM) stores its sessions: the client resumes on another one", async () => {
    const [A, B, C] = nodes;
    const sc = await Scene.open({ entry: A, bobAt: C });
    try {
      const gone = nextEvent(sc.bob, "presence", { filter: presenceOf(sc.room, sc.aliceId, "offline") });
      const stopped = A.stop();
      sc.cutAt = Date.now();
      await waitDisconnect(sc.alice);
      await gone;
      const missed = await sc.send(3);
      assert.deepEqual(await stopped, { code: 0, signal: null }, "A exits 0 after its drain");
      const session = await sc.reconnect(B);
      assertRecovered(sc, session);
      assert.deepEqual(ids(sc.received()), ids(missed));
    } finally {
      await sc.close();
    }
  });

  test("a SIGKILLed instance stores no session: the client gets a fresh one and history fills the gap", async () => {
    const [, B, C] = nodes;
    const sc = await Scene.open({ entry: B, bobAt: C });
    try {
      // Killed first: the cut comes from the dead process, which stores
      // nothing (had it seen the cut before dying, it would have stored the
      // session and the client would resume it).
      B.child.kill("SIGKILL");
      await B.exited;
      sc.cutAt = Date.now();
      await waitDisconnect(sc.alice);
      sc.proxy.point(null);
      const missed = await sc.send(4);
      const session = await sc.reconnect(C);
      await assertFresh(sc, session, missed);
      const live = await assertLive(sc);
      assert.deepEqual(ids(sc.received()), [live.id], "nothing replayed, nothing twice");
    } finally {
      await sc.close();
    }
  });
});

describe("recovery bounds", () => {
  let redis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    closeAll();
    await redis?.stop();
  });

  test("a session past recovery.max_disconnection falls back to a fresh one", async () => {
    const nodes = await startCluster(redis, 2, { ...FAST, CHATD_RECOVERY_MAX_DISCONNECTION: "1s" });
    const [A, B] = nodes;
    const sc = await Scene.open({ entry: A, bobAt: B });
    try {
      await sc.cut();
      const missed = await sc.send(3);
      const key = `${nodes.prefix}:session:${sc.alice._pid}`;
      await waitFor("the stored session to expire", async () => (await redisCli(redis, "EXISTS", key)) === "0");
      const session = await sc.reconnect(B);
      await assertFresh(sc, session, missed);
    } finally {
      await sc.close();
      for (const n of nodes) await stopChatd(n);
    }
  });

  test("an offset trimmed from the recovery stream falls back to a fresh one", async () => {
    const nodes = await startCluster(redis, 2, { ...FAST, CHATD_RECOVERY_STREAM_LENGTH: "100" });
    const [A, B] = nodes;
    try {
      // Control: a short absence on the same settings recovers.
      await assertShortCutRecovers(A, B, 5);
      const sc = await Scene.open({ entry: A, bobAt: B });
      try {
        await sc.cut();
        const missed = await sc.send(300);
        const len = Number(await redisCli(redis, "XLEN", `${nodes.prefix}:recovery`));
        assert.ok(len < 300, `the recovery stream is capped (${len} entries)`);
        const session = await sc.reconnect(B);
        await assertFresh(sc, session, missed);
      } finally {
        await sc.close();
      }
    } finally {
      for (const n of nodes) await stopChatd(n);
    }
  });

  test("more missed packets than recovery.max_packets falls back to a fresh one", async () => {
    const nodes = await startCluster(redis, 2, { ...FAST, CHATD_RECOVERY_MAX_PACKETS: "20" });
    const [A, B] = nodes;
    try {
      // Control: a short absence on the same settings recovers.
      await assertShortCutRecovers(A, B, 10);
      const sc = await Scene.open({ entry: A, bobAt: B });
      try {
        await sc.cut();
        const missed = await sc.send(30);
        const session = await sc.reconnect(B);
        await assertFresh(sc, session, missed);
      } finally {
        await sc.close();
      }
    } finally {
      for (const n of nodes) await stopChatd(n);
    }
  });
});

describe("recovery on a single instance", () => {
  test("a cut client resumes its session on the same instance", async () => {
    const srv = await startChatd({});
    const sc = await Scene.open({ entry: srv, bobAt: srv, transports: ["polling"] });
    try {
      await sc.cut();
      const missed = await sc.send(5);
      await ok(sc.bob, "typing", { room: sc.room, typing: true });
      const session = await sc.reconnect(srv);
      assertRecovered(sc, session);
      assert.deepEqual(ids(sc.received()), ids(missed));
      const live = await assertLive(sc);
      assert.deepEqual(ids(sc.received()), [...ids(missed), live.id]);
      assert.deepEqual(sc.typing, []);
    } finally {
      await sc.close();
      await stopChatd(srv);
    }
  });

  test("more missed packets than recovery.max_packets falls back to a fresh one", async () => {
    const srv = await startChatd({ ...FAST, CHATD_RECOVERY_MAX_PACKETS: "20" });
    try {
      // Control: a short absence on the same settings recovers.
      await assertShortCutRecovers(srv, srv, 10);
      const sc = await Scene.open({ entry: srv, bobAt: srv });
      try {
        await sc.cut();
        const missed = await sc.send(30);
        await assertFresh(sc, await sc.reconnect(srv), missed);
      } finally {
        await sc.close();
      }
    } finally {
      await stopChatd(srv);
    }
  });

  test("with recovery.max_disconnection=0 a reconnect is always fresh", async () => {
    const srv = await startChatd({ CHATD_RECOVERY_MAX_DISCONNECTION: "0" });
    const sc = await Scene.open({ entry: srv, bobAt: srv });
    try {
      assert.equal(sc.alice._pid, undefined, "no private session id without recovery");
      await sc.cut();
      const missed = await sc.send(3);
      const session = await sc.reconnect(srv);
      await assertFresh(sc, session, missed);
    } finally {
      await sc.close();
      await stopChatd(srv);
    }
  });
});
