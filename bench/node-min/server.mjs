// The minimal Node peer: the smallest socket.io 4 server that does what
// chatbench asks of a chat server, as a user choosing Node would write it.
// It keeps everything in memory and handles two events:
//
//   join    {room}        socket.join(room), then the ack {ok: true, room}
//   message {room, text}  socket.to(room).emit("message", payload), then the
//                         ack {ok: true}
//
// It has no users, history, presence, limits or connection state recovery
// (bench/node-peer has chatd's behaviour for those); WebSocket frames are
// masked and validated by bufferutil and utf-8-validate, which ws loads
// when they are installed.
//
// Settings (environment):
//   PEER_LISTEN   host:port to listen on (default 127.0.0.1:3200)
//   PEER_BACKLOG  listen backlog (default 4096, as bench/node-peer)
//
// GET /healthz answers 200 while the process serves; SIGTERM closes it.

import { createServer } from "node:http";
import { Server } from "socket.io";

const listen = process.env.PEER_LISTEN || "127.0.0.1:3200";
const backlog = Number(process.env.PEER_BACKLOG || 4096);
const colon = listen.lastIndexOf(":");
const host = colon > 0 ? listen.slice(0, colon) : "127.0.0.1";
const port = Number(listen.slice(colon + 1));
if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isInteger(backlog) || backlog < 1) {
  console.error(`node-min: PEER_LISTEN must be host:port and PEER_BACKLOG a whole number above 0`);
  process.exit(2);
}

const httpServer = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}\n');
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(httpServer, { serveClient: false });

function roomOf(payload) {
  return payload !== null && typeof payload === "object" && typeof payload.room === "string" && payload.room !== ""
    ? payload.room
    : null;
}
const badRequest = { ok: false, error: { code: "bad_request", message: "the argument must be an object with a room" } };

io.on("connection", (socket) => {
  socket.on("join", (payload, ack) => {
    const room = roomOf(payload);
    if (room !== null) socket.join(room);
    if (typeof ack === "function") ack(room === null ? badRequest : { ok: true, room });
  });
  socket.on("message", (payload, ack) => {
    const room = roomOf(payload);
    if (room !== null) socket.to(room).emit("message", payload);
    if (typeof ack === "function") ack(room === null ? badRequest : { ok: true });
  });
});

httpServer.listen({ port, host, backlog }, () => {
  const a = httpServer.address();
  console.log(`node-min serving on ${a.address}:${a.port} (pid ${process.pid})`);
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
