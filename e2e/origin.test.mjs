// Same-origin clients with cors.origins set: a page chatd serves itself, or
// a client that always sends its own origin (python-socketio), connects
// over every transport whatever cors.origins holds; other origins are still
// held to the list.

import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { TRANSPORTS, startChatd, stopChatd, closeAll, connect, ok, uid } from "./lib/chatd.mjs";

/** upgrade opens a raw WebSocket with the given Origin and resolves to "open" or the HTTP status of the refusal. */
function upgrade(url, origin) {
  const ws = new WebSocket(url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket", { origin });
  return new Promise((resolve) => {
    ws.once("open", () => {
      ws.close();
      resolve("open");
    });
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      resolve(res.statusCode);
    });
    ws.once("error", (err) => resolve(`error: ${err.message}`));
  });
}

describe("same origin with cors.origins set", { timeout: 60_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({ CHATD_CORS_ORIGINS: "https://other.example" });
  });
  after(() => stopChatd(srv));
  afterEach(() => closeAll());

  it("upgrades a WebSocket whose Origin is chatd's own, every time", async () => {
    for (let i = 0; i < 20; i++) assert.equal(await upgrade(srv.url, srv.url), "open");
    assert.equal(await upgrade(srv.url, `http://localhost:${srv.port}`), 400, "another host name is another origin");
  });

  it("still holds other origins to the list", async () => {
    assert.equal(await upgrade(srv.url, "https://other.example"), "open");
    assert.equal(await upgrade(srv.url, "https://evil.example"), 400);
  });

  it("opens a long-polling session whose Origin is chatd's own", async () => {
    const res = await fetch(srv.url + "/socket.io/?EIO=4&transport=polling", { headers: { Origin: srv.url } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^0\{/);
  });

  for (const transports of [...TRANSPORTS, ["polling", "websocket"]]) {
    it(`serves socket.io-client sending chatd's own Origin over ${transports.join(" then ")}`, async () => {
      const { socket, session } = await connect(srv.url, {
        auth: { userId: uid("same") },
        transports,
        extraHeaders: { Origin: srv.url },
      });
      const room = uid("room");
      await ok(socket, "join", { room });
      assert.deepEqual((await ok(socket, "rooms", {})).rooms, [room]);
      assert.equal(typeof session.socketId, "string");
      if (transports.length > 1) {
        if (socket.io.engine.transport.name !== "websocket") {
          await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
        }
        assert.equal(socket.io.engine.transport.name, "websocket");
        assert.deepEqual((await ok(socket, "rooms", {})).rooms, [room]);
      }
    });
  }
});
