// A TCP proxy in front of a chatd instance, standing in for a load balancer:
// a client connects through it, and the test cuts its connections and points
// it at another instance, so the client's own reconnect lands there.

import net from "node:net";
import { freePort } from "./chatd.mjs";

/**
 * tcpProxy forwards TCP connections on its own port to a chatd instance.
 * point(port) drops every open connection (the client sees its transport
 * close) and sends new ones to port; with null it refuses them (the
 * instance is down). pollPending reports whether a long-poll is waiting;
 * stall and flow stop and restart the traffic from the instance to clients.
 */
export async function tcpProxy(targetPort) {
  let target = targetPort;
  const conns = new Set();
  const server = net.createServer((client) => {
    if (!target) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, "127.0.0.1");
    const pair = { client, upstream, pendingGet: false };
    conns.add(pair);
    client.on("data", (d) => {
      if (d.subarray(0, 4).toString() === "GET ") pair.pendingGet = true;
    });
    upstream.on("data", () => {
      pair.pendingGet = false;
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(pair);
    };
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    /** pollPending reports whether a request (a long-poll) is waiting for its answer. */
    pollPending: () => [...conns].some((c) => c.pendingGet),
    point(p) {
      target = p;
      for (const { client, upstream } of conns) {
        client.destroy();
        upstream.destroy();
      }
      conns.clear();
    },
    /** stall stops passing what the instance sends on to the clients, as a client that stopped reading would. */
    stall() {
      for (const { client, upstream } of conns) {
        upstream.unpipe(client);
        upstream.pause();
      }
    },
    /** flow passes it on again. */
    flow() {
      for (const { client, upstream } of conns) upstream.pipe(client);
    },
    close() {
      this.point(null);
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
