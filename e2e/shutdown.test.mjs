// SIGTERM with connected clients: chatd drains, disconnects them and exits 0.

import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { startChatd, closeAll, connect, connectError, ok, waitDisconnect, uid } from "./lib/chatd.mjs";

describe("shutdown", { timeout: 60_000 }, () => {
  after(() => closeAll());

  const variants = [
    ["CHATD_SHUTDOWN_TIMEOUT=5s", { CHATD_SHUTDOWN_TIMEOUT: "5s" }],
    // shutdown.drain is chatd's own setting (not in the protocol contract);
    // chatd wants it shorter than the timeout.
    ["CHATD_SHUTDOWN_TIMEOUT=5s and CHATD_SHUTDOWN_DRAIN=1s", { CHATD_SHUTDOWN_TIMEOUT: "5s", CHATD_SHUTDOWN_DRAIN: "1s" }],
  ];
  for (const [what, env] of variants) {
    it(`exits 0 on SIGTERM and disconnects its clients, with ${what}`, async () => {
      const srv = await startChatd(env);
      const room = uid("room");
      const clients = [];
      for (const transports of [["polling"], ["websocket"], ["polling", "websocket"]]) {
        const { socket } = await connect(srv.url, { auth: { userId: uid("stay") }, transports });
        await ok(socket, "join", { room });
        clients.push(socket);
      }
      const disconnects = clients.map((s) => waitDisconnect(s, 15_000));

      // The bound is the configured timeout plus slack for a loaded machine;
      // it only keeps a hung process from hanging the suite.
      const res = await srv.stop(15_000);
      assert.deepEqual(
        { code: res.code, signal: res.signal },
        { code: 0, signal: null },
        `chatd did not exit 0 on SIGTERM; output:\n${srv.output()}`,
      );
      const reasons = await Promise.all(disconnects);
      for (const reason of reasons) {
        assert.ok(
          ["io server disconnect", "transport close", "transport error", "ping timeout"].includes(reason),
          `unexpected disconnect reason ${reason}`,
        );
      }
    });
  }
});

describe("shutdown with refused long-polling sessions", { timeout: 60_000 }, () => {
  // A refused CONNECT leaves its Engine.IO session closing; the drain must
  // end it at once rather than wait out the library's 30 s polling close
  // timeout while the HTTP server waits for its requests.
  it("a SIGTERM right after refused polling connects exits within a few seconds, every time", async () => {
    for (let round = 0; round < 3; round++) {
      const srv = await startChatd({ CHATD_AUTH_MODE: "jwt", CHATD_AUTH_JWT_SECRET: `e2e-shutdown-${"x".repeat(40)}` });
      const errs = await Promise.all(Array.from({ length: 10 }, () => connectError(srv.url, { auth: { token: "not.a.jwt" }, transports: ["polling"] })));
      assert.ok(errs.every((e) => e.message === "unauthorized"));
      const t = Date.now();
      const res = await srv.stop();
      assert.deepEqual(res, { code: 0, signal: null });
      assert.ok(Date.now() - t < 10_000, `round ${round}: the shutdown took ${Date.now() - t} ms:\n${srv.output()}`);
    }
  });
});
