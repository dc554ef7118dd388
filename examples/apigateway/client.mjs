// The frontend's side: connect through nginx (wss://), ask for the
// connection id as an API Gateway client would, and print the answer that
// the handler's PostToConnection sent. chatd delivers it as the "push"
// event (api.gateway_event).
//
//   NODE_EXTRA_CA_CERTS=<run folder>/cert.pem node client.mjs https://localhost:8443

import { io } from "socket.io-client";

const url = process.argv[2] || "https://localhost:8443";
const socket = io(url, { transports: ["websocket"], auth: { userId: "alice" } });

socket.on("connect_error", (err) => {
  console.error("refused:", err.message, err.data ?? "");
  process.exit(1);
});
socket.on("connect", () => {
  // Any event name that is not one of chatd's own reaches the handler as $default.
  socket.emit("action", { action: "GET_CONNECTION_ID" });
});
socket.on("push", ({ connectionId }) => {
  console.log(`connectionId ${connectionId} (socket.id ${socket.id})`);
  socket.close();
});
