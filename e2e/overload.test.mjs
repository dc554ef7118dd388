// Overload: a WebSocket client that stops reading must not grow chatd's
// memory or hold up the others. Its volatile events (typing) are dropped
// while it is behind; when what is queued for it would pass
// limits.send_buffer_bytes it is disconnected, and on its own reconnect it
// gets what it missed (replayed by connection state recovery, or from
// history).
//
// The slow client reaches chatd through a TCP proxy that stops passing
// chatd's traffic on (stall), as a client whose reads have stopped would.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startChatd, stopChatd, connect, ok, nextEvent, uid, closeAll, waitFor, metric,
} from "./lib/chatd.mjs";
import { tcpProxy } from "./lib/proxy.mjs";

/**
 * SEND_BUFFER is the slow client's limit: larger than one flood batch, so
 * that the test sees the queue grow before chatd gives up on the client.
 */
const SEND_BUFFER = 4 * 1024 * 1024;
/** TEXT is one message text of 4,000 bytes: a few thousand fill every buffer on the way. */
const TEXT = "x".repeat(3990);
/** MAX_MESSAGES bounds the flood (80 MB of text) in case chatd never gives up on the client. */
const MAX_MESSAGES = 20000;

describe("a client that cannot keep up", () => {
  let srv;
  let proxy;
  before(async () => {
    srv = await startChatd({
      CHATD_LIMITS_SEND_BUFFER_BYTES: String(SEND_BUFFER),
      CHATD_LIMITS_EVENTS_PER_SECOND: "100000",
      CHATD_LIMITS_EVENT_BURST: "100000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0",
      CHATD_HISTORY_SIZE: String(MAX_MESSAGES),
    });
  });
  after(async () => {
    closeAll();
    await proxy?.close();
    await stopChatd(srv);
  });

  test("loses its typing notices, is disconnected at the send buffer limit, and catches up on reconnect; the others get everything", async (t) => {
    const room = uid("room");
    proxy = await tcpProxy(srv.port);
    const slowId = uid("slow");
    const { socket: slow } = await connect(proxy.url, {
      auth: { userId: slowId },
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      randomizationFactor: 0,
    });
    const { socket: fast } = await connect(srv.url, { auth: { userId: uid("fast") } });
    const { socket: sender } = await connect(srv.url, { auth: { userId: uid("sender") } });
    for (const s of [slow, fast, sender]) await ok(s, "join", { room });

    const slowGot = [];
    slow.on("message", (m) => slowGot.push(m.id));
    const fastGot = [];
    fast.on("message", (m) => fastGot.push(m.id));
    const sessions = [];
    slow.on("session", (s) => sessions.push(s));
    const slowTyping = [];
    slow.on("typing", (t) => slowTyping.push(t));

    const sent = [];
    const flood = async (n) => {
      const acks = await Promise.all(
        Array.from({ length: n }, (_, i) => ok(sender, "message", { room, text: `${sent.length + i} ${TEXT}` })),
      );
      sent.push(...acks.map((a) => a.message.id));
    };

    proxy.stall();
    // Until chatd has had to queue frames for the slow client (the kernel's
    // buffers on the way take megabytes first)...
    while ((await metric(srv.url, "chatd_send_buffered_bytes")) === 0) {
      assert.ok(sent.length < MAX_MESSAGES, "chatd never queued anything for a client that does not read");
      assert.equal(await metric(srv.url, "chatd_slow_clients_disconnected_total"), 0, "disconnected before anything was seen queued");
      await flood(50);
    }
    // ...when a typing notice for it is dropped, not queued.
    const droppedBefore = await metric(srv.url, "chatd_volatile_dropped_total");
    const fastTyping = nextEvent(fast, "typing", { filter: (t) => t.room === room });
    await ok(sender, "typing", { room, typing: true });
    await fastTyping;
    await waitFor("the volatile drop to be counted", async () => (await metric(srv.url, "chatd_volatile_dropped_total")) > droppedBefore);

    // Then until chatd gives up on it.
    while ((await metric(srv.url, "chatd_slow_clients_disconnected_total")) === 0) {
      assert.ok(sent.length < MAX_MESSAGES, `chatd still held the slow client after ${sent.length} messages`);
      await flood(100);
    }
    await waitFor("the queue to be released", async () => (await metric(srv.url, "chatd_send_buffered_bytes")) === 0);

    // The fast member was not held up: it has every message, in order.
    await waitFor("the fast member to receive everything", () => fastGot.length >= sent.length, 30000);
    assert.deepEqual(fastGot, sent);

    // The slow client reads again, finds its connection gone, reconnects by
    // itself and catches up.
    const reconnected = nextEvent(slow, "session", { timeoutMs: 20000 });
    proxy.flow();
    const session = await reconnected;
    assert.deepEqual(session.rooms, [room], "the slow client is back in its room");
    if (!session.recovered) {
      let after = slowGot.at(-1);
      for (;;) {
        const page = await ok(slow, "history", { room, after, limit: 100 });
        assert.notEqual(page.gap, true, "history after the last message received has a gap");
        slowGot.push(...page.messages.map((m) => m.id));
        if (page.messages.length < 100) break;
        after = page.messages.at(-1).id;
      }
    } else {
      // The replay comes before the answer to a request sent after it.
      await ok(slow, "rooms", {});
    }
    assert.equal(new Set(slowGot).size, slowGot.length, "the slow client got a message twice");
    assert.deepEqual(slowGot, sent, `the slow client has every message, in order (session recovered: ${session.recovered})`);
    t.diagnostic(`${sent.length} messages of 4 kB; the slow client got ${slowGot.length} (session recovered: ${session.recovered})`);
    assert.deepEqual(slowTyping, [], "the dropped typing notice came late instead of not at all");
    assert.equal(await metric(srv.url, "chatd_slow_clients_disconnected_total"), 1);
  });
});
