// probe-client prints the Engine.IO frames that the official socket.io-client
// (WebSocket transport only, as chatbench) sends and receives while it
// connects with auth, joins a room and exchanges one message with a second
// client. chatbench's frames are checked against this transcript; see
// bench/RESULTS.md. Usage: node probe-client.mjs http://127.0.0.1:3000
//
// Only loopback targets are accepted.

import { io } from "socket.io-client";

const url = process.argv[2] || "http://127.0.0.1:3000";
const { hostname } = new URL(url);
if (!["127.0.0.1", "localhost", "[::1]", "::1"].includes(hostname)) {
  console.error(`probe-client: ${url} is not a loopback address`);
  process.exit(2);
}

// trace logs every Engine.IO packet as it is on the wire: the packet type
// digit, then the data. The engine exists as soon as io() returns, before
// its WebSocket opens, so even the open packet is seen.
function trace(label, socket) {
  const types = { open: 0, close: 1, ping: 2, pong: 3, message: 4, upgrade: 5, noop: 6 };
  const engine = socket.io.engine;
  engine.on("packetCreate", (p) => console.log(`${label} -> ${types[p.type]}${p.data ?? ""}`));
  engine.on("packet", (p) => console.log(`${label} <- ${types[p.type]}${p.data ?? ""}`));
}

function connect(userId) {
  const socket = io(url, { transports: ["websocket"], auth: { userId, name: userId }, reconnection: false });
  trace(userId, socket);
  return new Promise((resolve, reject) => {
    socket.once("session", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

const timer = setTimeout(() => {
  console.error("probe-client: no answer within 10 s");
  process.exit(1);
}, 10000);

const a = await connect("probe-a");
const b = await connect("probe-b");
console.log("join ack:", JSON.stringify(await a.emitWithAck("join", { room: "probe" })));
await b.emitWithAck("join", { room: "probe" });
const got = new Promise((resolve) => b.once("message", resolve));
console.log("message ack:", JSON.stringify(await a.emitWithAck("message", { room: "probe", text: "hello" })));
console.log("b received:", JSON.stringify(await got));
a.close();
b.close();
clearTimeout(timer);
