// The Node peer: a socket.io 4 server with chatd's join and message
// behaviour (docs/protocol.md in the repository), for benchmarking chatd against
// the reference implementation of socket.io. It keeps no history: a message
// is given an id, emitted to the room and acknowledged.
//
// Settings (environment):
//   PEER_LISTEN          host:port to listen on (default 127.0.0.1:3100)
//   PEER_REDIS_URL       redis:// URL; set, the @socket.io/redis-adapter joins
//                        the instances into one cluster
//   PEER_REDIS_ADDRS     instead of PEER_REDIS_URL: comma-separated host:port
//                        of Redis Cluster nodes (node-redis's createCluster)
//   PEER_ADAPTER         "classic" (default: createAdapter, PUBLISH and
//                        SUBSCRIBE) or "sharded" (createShardedAdapter with
//                        subscriptionMode "dynamic": SPUBLISH and SSUBSCRIBE,
//                        a channel per room; Redis 7 or later)
//   PEER_REDIS_PREFIX    Pub/Sub channel prefix (default "chatd-peer")
//   PEER_RECOVERY_MS     connection state recovery window in milliseconds
//                        (default 120000, as chatd's recovery.max_disconnection;
//                        0 turns it off; single instance only: the Redis
//                        adapter does not keep sessions)
//   PEER_PAYLOAD_BYTES   largest packet in bytes (default 65536, as chatd)
//   PEER_MESSAGE_BYTES   largest message text in bytes (default 4096)
//   PEER_BACKLOG         listen backlog (default 4096, as Go's listen gets
//                        from net.core.somaxconn here; Node's own default is
//                        511, which makes a connection storm hit SYN retries
//                        of 1 s long before the CPU is busy)
//
// GET /healthz answers 200 while the process serves; SIGTERM closes it.

import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { Server } from "socket.io";

const listen = process.env.PEER_LISTEN || "127.0.0.1:3100";
const redisURL = process.env.PEER_REDIS_URL || "";
const redisAddrs = (process.env.PEER_REDIS_ADDRS || "").split(",").map((a) => a.trim()).filter(Boolean);
const adapterKind = process.env.PEER_ADAPTER || "classic";
const redisPrefix = process.env.PEER_REDIS_PREFIX || "chatd-peer";
if (redisURL && redisAddrs.length > 0) {
  console.error("node-peer: set PEER_REDIS_URL or PEER_REDIS_ADDRS, not both");
  process.exit(2);
}
if (adapterKind !== "classic" && adapterKind !== "sharded") {
  console.error(`node-peer: PEER_ADAPTER must be "classic" or "sharded", not ${JSON.stringify(adapterKind)}`);
  process.exit(2);
}
const clustered = redisURL !== "" || redisAddrs.length > 0;
const recoveryMs = intSetting("PEER_RECOVERY_MS", 120000);
const payloadBytes = intSetting("PEER_PAYLOAD_BYTES", 65536);
const messageBytes = intSetting("PEER_MESSAGE_BYTES", 4096);
const backlog = intSetting("PEER_BACKLOG", 4096);

function intSetting(name, def) {
  const v = process.env[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`node-peer: ${name} must be a whole number of at least 0, not ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const colon = listen.lastIndexOf(":");
const host = colon > 0 ? listen.slice(0, colon) : "127.0.0.1";
const port = Number(listen.slice(colon + 1));
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`node-peer: PEER_LISTEN must be host:port, not ${JSON.stringify(listen)}`);
  process.exit(2);
}

const ROOM = /^[A-Za-z0-9_.:-]{1,64}$/;
const USER_ROOM = "user:";

/** ChatError is a failure answered as { ok: false, error: { code, message } }. */
class ChatError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function roomOf(payload) {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw new ChatError("bad_request", 'the request\'s argument must be an object, such as {"room": "general"}');
  }
  const room = payload.room;
  if (typeof room !== "string" || !ROOM.test(room)) {
    throw new ChatError("bad_request", "room must be 1 to 64 characters of A-Z a-z 0-9 _ - . :");
  }
  if (room.startsWith(USER_ROOM)) {
    throw new ChatError("bad_request", `room names starting with "${USER_ROOM}" are reserved`);
  }
  return room;
}

/** handle runs fn and answers the ack, when there is one, in chatd's shape. */
function handle(fn) {
  return async (payload, ack) => {
    if (typeof payload === "function" && ack === undefined) {
      ack = payload;
      payload = undefined;
    }
    let res;
    try {
      res = { ...(await fn(payload)), ok: true };
    } catch (err) {
      const e = err instanceof ChatError ? err : new ChatError("internal", "something went wrong; try again");
      res = { ok: false, error: { code: e.code, message: e.message } };
    }
    if (typeof ack === "function") ack(res);
  };
}

// Message ids: "<ms>-<seq>", as chatd's, unique per instance (the instance
// number keeps them unique across a cluster).
const instance = parseInt(randomBytes(2).toString("hex"), 16);
let lastMs = 0;
let seq = 0;
function nextID() {
  const ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    seq = 0;
  } else {
    seq++;
  }
  return `${lastMs}-${instance * 1000000 + seq}`;
}

// Membership: user id -> rooms, on this instance. Benchmark users join
// through one socket each, so per-instance state is enough; joins still
// reach every socket of the user in the cluster through the user's room.
const membership = new Map();
// Sockets of each user on this instance, for online/offline presence.
const sockets = new Map();

const httpServer = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}\n');
    return;
  }
  res.writeHead(404).end();
});

const opts = {
  serveClient: false,
  maxHttpBufferSize: payloadBytes,
  pingInterval: 25000,
  pingTimeout: 20000,
};
if (recoveryMs > 0 && !clustered) {
  opts.connectionStateRecovery = { maxDisconnectionDuration: recoveryMs, skipMiddlewares: true };
}
const io = new Server(httpServer, opts);

let redisClients = [];
if (clustered) {
  const { createClient, createCluster } = await import("redis");
  const { createAdapter, createShardedAdapter } = await import("@socket.io/redis-adapter");
  // A cluster client finds every master from the nodes it is given and
  // sends each channel's messages to the node of its slot.
  const pub = redisAddrs.length > 0
    ? createCluster({ rootNodes: redisAddrs.map((a) => ({ url: `redis://${a}` })) })
    : createClient({ url: redisURL });
  const sub = pub.duplicate();
  pub.on("error", (err) => console.error("node-peer: redis:", err.message));
  sub.on("error", (err) => console.error("node-peer: redis:", err.message));
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(adapterKind === "sharded"
    ? createShardedAdapter(pub, sub, { channelPrefix: redisPrefix, subscriptionMode: "dynamic" })
    : createAdapter(pub, sub, { key: redisPrefix }));
  redisClients = [pub, sub];
}

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  let userId = auth.userId;
  if (userId === undefined || userId === null || userId === "") {
    userId = "guest-" + randomBytes(6).toString("hex");
  } else if (typeof userId !== "string" || userId.length > 64) {
    const err = new Error("unauthorized");
    err.data = { code: "unauthorized", message: "userId must be a string of at most 64 characters" };
    next(err);
    return;
  }
  const name = typeof auth.name === "string" && auth.name !== "" ? auth.name.slice(0, 64) : userId;
  socket.data = { userId, name, connectedAt: Date.now() };
  next();
});

io.on("connection", (socket) => {
  const { userId, name } = socket.data;
  const userRoom = USER_ROOM + userId;
  socket.join(userRoom);
  const n = (sockets.get(userId) || 0) + 1;
  sockets.set(userId, n);
  const memberOf = [...(membership.get(userId) || [])];
  if (memberOf.length > 0) socket.join(memberOf);
  socket.emit("session", { userId, name, socketId: socket.id, rooms: memberOf, recovered: socket.recovered });
  if (n === 1) {
    for (const room of memberOf) presence(room, userRoom, "online");
  }

  function presence(room, except, event) {
    io.to(room).except(except).emit("presence", { room, userId, name, event });
  }

  socket.on(
    "join",
    handle((payload) => {
      const room = roomOf(payload);
      let rooms = membership.get(userId);
      if (!rooms) membership.set(userId, (rooms = new Set()));
      const fresh = !rooms.has(room);
      rooms.add(room);
      io.in(userRoom).socketsJoin(room);
      if (fresh) {
        presence(room, userRoom, "joined");
        io.to(userRoom).emit("membership", { room, event: "joined" });
      }
      return { room };
    }),
  );

  socket.on(
    "leave",
    handle((payload) => {
      const room = roomOf(payload);
      const rooms = membership.get(userId);
      const was = rooms ? rooms.delete(room) : false;
      io.in(userRoom).socketsLeave(room);
      if (was) {
        presence(room, userRoom, "left");
        io.to(userRoom).emit("membership", { room, event: "left" });
      }
      return { room };
    }),
  );

  socket.on(
    "message",
    handle((payload) => {
      const room = roomOf(payload);
      const text = payload.text;
      if (typeof text !== "string" || text === "") {
        throw new ChatError("bad_request", "text must be a string that is not empty");
      }
      if (Buffer.byteLength(text, "utf8") > messageBytes) {
        throw new ChatError("too_large", `text is longer than ${messageBytes} bytes; shorten it`);
      }
      const clientMsgId = payload.clientMsgId;
      if (clientMsgId !== undefined && (typeof clientMsgId !== "string" || clientMsgId.length < 1 || clientMsgId.length > 64)) {
        throw new ChatError("bad_request", "clientMsgId must be 1 to 64 characters");
      }
      if (!socket.rooms.has(room)) {
        throw new ChatError("forbidden", `join room "${room}" before sending to it`);
      }
      const message = { id: nextID(), room, userId, name, text, ts: Date.now() };
      if (clientMsgId !== undefined) message.clientMsgId = clientMsgId;
      socket.to(room).emit("message", message);
      return { message };
    }),
  );

  socket.on("disconnect", () => {
    const left = (sockets.get(userId) || 1) - 1;
    if (left > 0) {
      sockets.set(userId, left);
      return;
    }
    sockets.delete(userId);
    for (const room of membership.get(userId) || []) presence(room, userRoom, "offline");
  });
});

httpServer.listen({ port, host, backlog }, () => {
  const a = httpServer.address();
  console.log(`node-peer serving on ${a.address}:${a.port} (pid ${process.pid}, redis: ${redisAddrs.length > 0 ? `cluster of ${redisAddrs.join(",")}` : redisURL ? "yes" : "no"}, adapter: ${clustered ? adapterKind : "none"}, recovery: ${opts.connectionStateRecovery ? recoveryMs + " ms" : "off"})`);
});

function shutdown() {
  io.close(() => {
    Promise.allSettled(redisClients.map((c) => c.quit())).then(() => process.exit(0));
  });
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
