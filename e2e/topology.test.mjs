// The compose topology on loopback (deploy/loopback.sh): a private redis-server, three chatd
// processes and Debian's nginx with deploy/nginx/nginx.conf in front. Clients on the
// long-polling transport only, each from its own 127.0.0.N address so that nginx's
// `hash $remote_addr` spreads them, chat through the load balancer: every request of a
// session reaches one instance (sticky sessions). Then a rolling restart of the three
// instances (SIGTERM, exit status 0, start again on the same port, /readyz 200) while every
// client keeps sending: afterwards every client is still in its rooms, and `history` holds
// every acknowledged message exactly once.
//
// The run folder (logs of Redis, nginx and each chatd) is removed when the test passes and
// kept (its path printed) when it fails; TOPOLOGY_KEEP=1 keeps it either way.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import http from "node:http";
import { io } from "socket.io-client";
import { buildChatd, REPO_ROOT, uid, waitFor } from "./lib/chatd.mjs";

const LOOPBACK = path.join(REPO_ROOT, "deploy", "loopback.sh");
const DRAIN = "1s";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function haveCommand(cmd) {
  return ["/usr/sbin", "/usr/bin", "/usr/local/bin", ...(process.env.PATH ?? "").split(":")].some((d) =>
    existsSync(path.join(d, cmd)),
  );
}

/** loopback runs deploy/loopback.sh and resolves to {code, stdout, stderr}. */
function loopback(env, ...args) {
  return new Promise((resolve) => {
    execFile("bash", [LOOPBACK, ...args], { env, maxBuffer: 16 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

function readEnvFile(file) {
  return Object.fromEntries(
    readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/** get fetches url from the source address localAddress and resolves to {status, body}. */
function get(url, localAddress) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { localAddress, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
  });
}

async function metric(url, name) {
  const { body } = await get(`${url}/metrics`, "127.0.0.1");
  const line = body.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : NaN;
}

// nginx's access log format (deploy/nginx/nginx.conf):
// $remote_addr "$request" $status $body_bytes_sent upstream=$upstream_addr rt=$request_time
const ACCESS = /^(\S+) "(\S+) (\S+) [^"]*" (\d{3}) \d+ upstream=(.*) rt=\S+$/;

function accessLog(file) {
  return readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.match(ACCESS))
    .filter(Boolean)
    .map(([, addr, method, uri, status, upstream]) => ({ addr, method, uri, status: Number(status), upstream }));
}

/**
 * chatClient is a socket.io client on the long-polling transport, from its own source address,
 * with reconnection on. It records its sessions and the messages it receives.
 */
function chatClient(lbURL, localAddress, userId) {
  const agent = new http.Agent({ keepAlive: true, localAddress });
  const socket = io(lbURL, {
    transports: ["polling"],
    auth: { userId },
    forceNew: true,
    agent,
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 1000,
    timeout: 5000,
  });
  // ready: connected and the server's session event for this connection has arrived.
  const c = { userId, localAddress, socket, agent, sessions: [], disconnects: [], connectErrors: 0, ready: false };
  socket.on("session", (s) => {
    c.sessions.push(s);
    c.ready = true;
  });
  socket.on("disconnect", (reason) => {
    c.disconnects.push(reason);
    c.ready = false;
  });
  socket.on("connect_error", () => (c.connectErrors += 1));
  return c;
}

/**
 * ok sends an idempotent request (join, rooms, history) and resolves to its acknowledgement,
 * which must be ok. A disconnect or a timeout is retried: clients may be moved between
 * instances at any time while nginx takes restarted instances back.
 */
async function ok(socket, event, payload) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    let ack;
    try {
      ack = await socket.timeout(3000).emitWithAck(event, payload);
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${event} ${JSON.stringify(payload)}: ${err.message}`);
      await sleep(100);
      continue;
    }
    if (!ack?.ok) throw new Error(`${event} ${JSON.stringify(payload)}: ${JSON.stringify(ack)}`);
    return ack;
  }
}

/**
 * send delivers one message with a clientMsgId, retrying (same id, so the server stores it
 * once) through disconnects, timeouts and `unavailable` until it is acknowledged.
 */
async function send(socket, room, text, clientMsgId, stats) {
  const deadline = Date.now() + 30_000;
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) stats.retries += 1;
    try {
      const ack = await socket.timeout(3000).emitWithAck("message", { room, text, clientMsgId });
      if (ack?.ok) return ack.message;
      if (!["unavailable", "rate_limited"].includes(ack?.error?.code)) {
        throw Object.assign(new Error(`message refused: ${JSON.stringify(ack)}`), { fatal: true });
      }
    } catch (err) {
      if (err.fatal) throw err;
      // disconnected or timed out: try again with the same clientMsgId
    }
    if (Date.now() > deadline) throw new Error(`message ${clientMsgId} not acknowledged within 30 s`);
    await sleep(100);
  }
}

/** history pages backwards through a room's whole history, oldest first. */
async function fullHistory(socket, room) {
  let before;
  const all = [];
  for (;;) {
    const { messages } = await ok(socket, "history", before ? { room, before, limit: 100 } : { room, limit: 100 });
    all.unshift(...messages);
    if (messages.length < 100) return all;
    before = messages[0].id;
  }
}

const missing = ["redis-server", "nginx"].filter((c) => !haveCommand(c));

test(
  "the compose topology on loopback: sticky long-polling through nginx, and a rolling restart that loses nothing",
  { timeout: 120_000, skip: missing.length ? `needs ${missing.join(" and ")} (Debian packages)` : false },
  async (t) => {
    const bin = await buildChatd();
    const dir = mkdtempSync(path.join(tmpdir(), "chatd-topology-"));
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith("CHATD_") && !k.startsWith("LOOPBACK_")),
    );
    Object.assign(env, { CHATD_SHUTDOWN_DRAIN: DRAIN, CHATD_SHUTDOWN_TIMEOUT: "10s", CHATD_LOG_LEVEL: "info" });
    const clients = [];
    let passed = false;
    t.after(async () => {
      for (const c of clients) {
        c.socket.close();
        c.agent.destroy();
      }
      const r = await loopback(env, "stop", dir);
      if (r.code !== 0) console.error(`loopback.sh stop: ${r.stderr}`);
      if (passed && !process.env.TOPOLOGY_KEEP) rmSync(dir, { recursive: true, force: true });
      else console.error(`topology test: ${passed ? "passed" : "failed"}; logs kept in ${dir}/logs`);
    });

    const started = await loopback(env, "start", dir, "--chatd", bin);
    assert.equal(started.code, 0, `loopback.sh start failed:\n${started.stderr}`);
    const topo = readEnvFile(path.join(dir, "env"));
    const lb = topo.LB_URL;
    const chatdURLs = topo.CHATD_URLS.split(",");
    const ports = topo.CHATD_PORTS.split(",");
    const nginxLog = path.join(topo.LOG_DIR, "nginx.log");

    // Which instance does nginx pick for each source address? Ask, and read its access log.
    const candidates = Array.from({ length: 40 }, (_, i) => `127.0.0.${10 + i}`);
    for (const addr of candidates) {
      const { status } = await get(`${lb}/healthz?probe=${addr}`, addr);
      assert.equal(status, 200, `GET /healthz through nginx from ${addr}`);
    }
    const byInstance = ports.map(() => []);
    const probes = await waitFor("nginx to log every probe", () => {
      const seen = accessLog(nginxLog).filter((l) => l.uri.startsWith("/healthz?probe="));
      return seen.length >= candidates.length && seen;
    });
    for (const l of probes) {
      assert.equal(l.uri, `/healthz?probe=${l.addr}`, "nginx logs the client's source address");
      const i = ports.findIndex((p) => l.upstream === `127.0.0.1:${p}`);
      assert.ok(i >= 0, `upstream ${l.upstream} is not one of the chatd ports ${ports}`);
      if (byInstance[i].length < 3) byInstance[i].push(l.addr);
    }
    for (const [i, addrs] of byInstance.entries()) {
      assert.equal(addrs.length, 3, `nginx sent fewer than 3 of ${candidates.length} source addresses to chatd${i + 1}`);
    }

    // Nine users, three per instance. Everyone is in "lobby"; team j has one member on each
    // instance, so its messages cross instances.
    const lobby = uid("lobby");
    const teams = [0, 1, 2].map(() => uid("team"));
    for (let j = 0; j < 3; j++) {
      for (let i = 0; i < 3; i++) {
        const c = chatClient(lb, byInstance[i][j], uid(`u${i + 1}${j}`));
        c.rooms = [lobby, teams[j]].sort();
        clients.push(c);
      }
    }
    await waitFor("every client's first socket.io session", () => clients.every((c) => c.sessions.length === 1));
    for (const c of clients) {
      for (const room of c.rooms) await ok(c.socket, "join", { room });
    }
    for (const [i, url] of chatdURLs.entries()) {
      assert.equal(await metric(url, "chatd_sockets"), 3, `chatd${i + 1} holds 3 sockets`);
    }

    // Chat: every client sends to both of its rooms, and the team members on the other
    // instances receive it.
    const acked = []; // {room, clientMsgId, id}
    const stats = { retries: 0 };
    const received = new Map(clients.map((c) => [c, new Set()]));
    for (const c of clients) c.socket.on("message", (m) => received.get(c).add(m.clientMsgId));
    let seq = 0;
    const sendOne = async (c, room) => {
      const clientMsgId = `${c.userId}:${seq++}`;
      const m = await send(c.socket, room, `hello from ${c.userId}`, clientMsgId, stats);
      assert.equal(m.clientMsgId, clientMsgId);
      acked.push({ room, clientMsgId, id: m.id });
      return clientMsgId;
    };
    const firstRound = [];
    for (const c of clients) {
      for (const room of c.rooms) firstRound.push({ c, room, id: await sendOne(c, room) });
    }
    for (const { c, room, id } of firstRound) {
      for (const other of clients) {
        if (other !== c && other.rooms.includes(room)) {
          await waitFor(`${other.userId} to receive ${id}`, () => received.get(other).has(id), 10_000);
        }
      }
    }

    // Sticky sessions: every request of every session so far reached one instance, and none
    // was refused.
    const steady = accessLog(nginxLog).filter((l) => l.uri.startsWith("/socket.io/"));
    const upstreamsOf = new Map();
    for (const l of steady) {
      assert.equal(l.status, 200, `before the restarts nginx answered ${l.status} to ${l.method} ${l.uri}`);
      const sid = new URL(l.uri, lb).searchParams.get("sid");
      if (!sid) continue;
      if (!upstreamsOf.has(sid)) upstreamsOf.set(sid, new Set());
      upstreamsOf.get(sid).add(l.upstream);
    }
    assert.equal(upstreamsOf.size, clients.length, "one Engine.IO session per client");
    for (const [sid, ups] of upstreamsOf) {
      assert.equal(ups.size, 1, `session ${sid} reached ${[...ups]}`);
    }
    const pollRequests = steady.filter((l) => l.uri.includes("sid=")).length;
    assert.ok(pollRequests >= 3 * clients.length, `only ${pollRequests} polling requests`);

    // Rolling restart while everyone keeps sending.
    let sending = true;
    const senders = clients.map(async (c) => {
      for (let k = 0; sending; k++) {
        await sendOne(c, c.rooms[k % 2]);
        await sleep(150);
      }
    });
    const restartLog = [];
    for (let i = 1; i <= 3; i++) {
      const sessionsBefore = clients.map((c) => c.sessions.length);
      const sockets = await metric(chatdURLs[i - 1], "chatd_sockets");
      assert.ok(sockets > 0, `chatd${i} holds no socket before its restart`);
      const ackedBefore = acked.length;
      const r = await loopback(env, "restart", dir, String(i));
      restartLog.push(r.stdout.trim());
      assert.equal(r.code, 0, `loopback.sh restart ${i}:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^chatd${i}: pid \\d+ exited with status 0;`), "SIGTERM ends in exit status 0");
      // The restarted instance's clients moved elsewhere and are connected again.
      await waitFor(`every client connected after restarting chatd${i}`, () => clients.every((c) => c.ready));
      // Its sockets were moved: that many clients (at least) have a new session.
      const moved = clients.filter((c, k) => c.sessions.length > sessionsBefore[k]).length;
      assert.ok(moved >= sockets, `chatd${i} held ${sockets} sockets, but only ${moved} clients got a new session`);
      assert.ok(acked.length > ackedBefore, `no message was acknowledged while chatd${i} restarted`);
      restartLog.push(`chatd${i}: ${sockets} sockets moved, ${acked.length - ackedBefore} messages acknowledged meanwhile`);
      assert.equal(await metric(chatdURLs[i - 1], "chatd_draining"), 0, `the new chatd${i} is not draining`);
    }
    // Keep chatting a little on the restarted cluster, then stop.
    await sleep(1000);
    sending = false;
    await Promise.all(senders);

    // No membership lost: every session (the first and every one after a reconnect) and the
    // rooms request list exactly the client's rooms.
    const moved = clients.filter((c) => c.sessions.length > 1).length;
    assert.ok(moved >= 3, `only ${moved} clients reconnected during the rolling restart`);
    for (const c of clients) {
      await waitFor(`${c.userId} connected`, () => c.ready);
      for (const [k, s] of c.sessions.entries()) {
        if (k > 0) assert.deepEqual([...s.rooms].sort(), c.rooms, `${c.userId}'s session ${k} lists other rooms`);
      }
      const { rooms } = await ok(c.socket, "rooms", {});
      assert.deepEqual([...rooms].sort(), c.rooms, `${c.userId} lost a membership`);
    }

    // No message lost, none twice: each room's history is exactly the acknowledged messages.
    for (const room of [lobby, ...teams]) {
      const member = clients.find((c) => c.rooms.includes(room));
      const history = await fullHistory(member.socket, room);
      const want = acked.filter((a) => a.room === room);
      const byClientMsgId = new Map();
      for (const m of history) {
        assert.ok(!byClientMsgId.has(m.clientMsgId), `${m.clientMsgId} is twice in ${room}'s history`);
        byClientMsgId.set(m.clientMsgId, m);
      }
      for (const a of want) {
        const m = byClientMsgId.get(a.clientMsgId);
        assert.ok(m, `acknowledged message ${a.clientMsgId} (id ${a.id}) is not in ${room}'s history`);
        assert.equal(m.id, a.id, `${a.clientMsgId} has another id in the history than in its acknowledgement`);
      }
      assert.equal(history.length, want.length, `${room}: ${history.length} messages stored, ${want.length} acknowledged`);
    }

    // The end: every instance stops with exit status 0 as well.
    const stopped = await loopback(env, "stop", dir);
    assert.equal(stopped.code, 0, stopped.stderr);
    for (let i = 1; i <= 3; i++) {
      assert.equal(readFileSync(path.join(dir, `chatd${i}.exit`), "utf8").trim(), "0", `chatd${i} exit status`);
    }
    const all = accessLog(nginxLog).filter((l) => l.uri.startsWith("/socket.io/"));
    const notOK = {};
    for (const l of all.filter((l) => l.status !== 200)) {
      const k = `${l.status} ${l.method}`;
      notOK[k] = (notOK[k] ?? 0) + 1;
    }
    passed = true;
    t.diagnostic(
      `${acked.length} messages acknowledged (${stats.retries} retries), ` +
        `${clients.reduce((n, c) => n + c.sessions.length - 1, 0)} reconnects, ` +
        `${all.length} socket.io requests through nginx (not 200: ${JSON.stringify(notOK)}); ` +
        restartLog.join(" | "),
    );
  },
);
