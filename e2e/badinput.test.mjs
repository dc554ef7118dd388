// Bad input: raw frames, binary attachments, oversized frames, unknown events
// and flooding. After each, the server must still serve other clients.

import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import {
  TRANSPORTS,
  startChatd,
  stopChatd,
  closeAll,
  connect,
  req,
  ok,
  nextEvent,
  expectNoEvent,
  waitDisconnect,
  disconnectReasons,
  assertServes,
  uid,
  byId,
  inRoom,
} from "./lib/chatd.mjs";
import { RawSocket } from "./lib/raw.mjs";

describe("bad input", { timeout: 120_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      // chatd requires payload_bytes >= message_bytes + 1024.
      CHATD_LIMITS_MESSAGE_BYTES: "1024",
      CHATD_LIMITS_PAYLOAD_BYTES: "2048",
      CHATD_LIMITS_EVENTS_PER_SECOND: "10000",
      CHATD_LIMITS_EVENT_BURST: "10000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0",
    });
  });
  after(async () => {
    await stopChatd(srv);
  });
  afterEach(() => closeAll());

  describe("raw socket.io frames over a WebSocket", () => {
    const frames = ["42", "42[", "42[]", "42[null]", '42["join"]', "42[\"join\",123]", '42["join",{"room":7}]', '42[{"a":1},"x"]'];
    for (const frame of frames) {
      it(`survives ${frame}`, async (t) => {
        const raw = await RawSocket.open(srv.url);
        try {
          const session = await raw.handshake({ userId: uid("raw") });
          assert.deepEqual(session.rooms, []);
          raw.send(frame);
          const probe = await raw.probe(7);
          if (probe === null) {
            t.diagnostic(`the server closed the connection after ${frame}`);
          } else {
            // Still connected: the frame changed nothing.
            assert.deepEqual(probe, { ok: true, rooms: [] });
          }
        } finally {
          await raw.close();
        }
        await assertServes(srv);
      });
    }

    for (const frame of ['425["rooms"]', '425["rooms",null]']) {
      it(`answers ${frame}, a request with no object at all, with bad_request`, async () => {
        const raw = await RawSocket.open(srv.url);
        try {
          await raw.handshake({ userId: uid("raw") });
          raw.send(frame);
          const f = await raw.nextMatching((x) => x.startsWith("435[") || x.startsWith("41") || x.startsWith("44"));
          assert.ok(f.startsWith("435["), `expected an ack frame 435[...], got ${f}`);
          const [ack] = JSON.parse(f.slice(3));
          assert.equal(ack.ok, false);
          assert.equal(ack.error.code, "bad_request");
          assert.deepEqual(await raw.probe(6), { ok: true, rooms: [] });
        } finally {
          await raw.close();
        }
      });
    }

    it('answers 421["message",{"room":["a"]}] with a bad_request ack frame 431[...]', async () => {
      const raw = await RawSocket.open(srv.url);
      try {
        await raw.handshake({ userId: uid("raw") });
        raw.send('421["message",{"room":["a"]}]');
        const f = await raw.nextMatching((x) => x.startsWith("431[") || x.startsWith("41") || x.startsWith("44"));
        assert.ok(f.startsWith("431["), `expected an ack frame 431[...], got ${f}`);
        const [ack] = JSON.parse(f.slice(3));
        assert.equal(ack.ok, false);
        assert.equal(ack.error.code, "bad_request");
        assert.equal(typeof ack.error.message, "string");
        assert.deepEqual(await raw.probe(8), { ok: true, rooms: [] });
      } finally {
        await raw.close();
      }
      await assertServes(srv);
    });

    it("survives non-socket.io garbage and a binary packet whose attachment never comes", async (t) => {
      for (const frame of ["not-a-packet", "4", "49", '451-["message",{"room":"r","text":{"_placeholder":true,"num":0}}]']) {
        const raw = await RawSocket.open(srv.url);
        try {
          await raw.handshake({ userId: uid("raw") });
          raw.send(frame);
          let state;
          try {
            state = (await raw.probe(9)) === null ? "closed" : "alive";
          } catch {
            state = "no answer";
          }
          t.diagnostic(`${frame}: ${state}`);
        } finally {
          await raw.close();
        }
        await assertServes(srv);
      }
    });
  });

  for (const transports of TRANSPORTS) {
    describe(`over ${transports[0]}`, () => {
      it("refuses binary attachments where text is expected with bad_request", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const { socket: a } = await connect(srv.url, { auth: { userId: alice }, transports });
        const { socket: b } = await connect(srv.url, { auth: { userId: bob }, transports });
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        const cases = [
          ["message", { room, text: new Uint8Array([1, 2, 3]) }],
          ["message", { room, text: Buffer.from("hello") }],
          ["message", { room, text: "x", clientMsgId: Buffer.from("id") }],
          ["join", { room: Buffer.from("abc") }],
          ["history", { room, after: Buffer.from("1-0") }],
        ];
        for (const [event, payload] of cases) {
          const ack = await req(a, event, payload);
          assert.equal(ack?.ok, false, `${event}: ${JSON.stringify(ack)}`);
          assert.equal(ack.error.code, "bad_request", `${event}: ${JSON.stringify(ack)}`);
        }
        await expectNoEvent(b, "message", { filter: inRoom(room) });
        assert.deepEqual((await ok(a, "history", { room })).messages, []);
        assert.deepEqual((await ok(a, "rooms", {})).rooms, [room]);
        await assertServes(srv, transports);
      });

      /**
       * oversized sends one request whose frame is about 4000 bytes and
       * resolves to "too_large" or "closed"; it fails when the request is
       * carried out.
       */
      const oversized = async (t, socket, event, payload) => {
        const disconnected = waitDisconnect(socket, 10_000).then((reason) => ({ reason }));
        const acked = req(socket, event, payload).then(
          (ack) => ({ ack }),
          (err) => ({ err }),
        );
        const first = await Promise.race([disconnected, acked]);
        if (first.ack) {
          assert.equal(first.ack.ok, false, `a 4000-byte ${event} frame was carried out: ${JSON.stringify(first.ack).slice(0, 200)}`);
          assert.equal(first.ack.error.code, "too_large", JSON.stringify(first.ack));
          t.diagnostic(`${event}: answered too_large`);
          return "too_large";
        }
        const reasons = disconnectReasons(socket);
        assert.ok(first.reason || reasons.length > 0, `request failed without a disconnect: ${first.err}`);
        t.diagnostic(`${event}: connection closed (${first.reason ?? reasons[0]})`);
        return "closed";
      };

      it("closes or refuses a frame over CHATD_LIMITS_PAYLOAD_BYTES and stays up", async (t) => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const { socket: a } = await connect(srv.url, { auth: { userId: alice }, transports });
        const { socket: b } = await connect(srv.url, { auth: { userId: bob }, transports });
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        // Well below both limits still passes.
        const fine = await ok(a, "message", { room, text: "f".repeat(1000) });
        await nextEvent(b, "message", { filter: byId(fine.message.id) });

        await oversized(t, a, "message", { room, text: "x".repeat(4000) });
        await expectNoEvent(b, "message", { filter: (m) => m?.room === room && m.id !== fine.message.id });
        assert.equal((await ok(b, "history", { room })).messages.length, 1);

        // The same frame size without a text limit in play: a join padded to 4000 bytes.
        const carol = uid("carol");
        const { socket: c } = await connect(srv.url, { auth: { userId: carol }, transports });
        const padded = uid("padded");
        await oversized(t, c, "join", { room: padded, pad: "p".repeat(4000) });
        const { session } = await connect(srv.url, { auth: { userId: carol }, transports });
        assert.deepEqual(session.rooms, [], "the oversized join must not have happened");
        await assertServes(srv, transports);
      });

      it("answers an unknown event with bad_request naming it", async () => {
        const { socket: a } = await connect(srv.url, { auth: { userId: uid("alice") }, transports });
        const ack = await req(a, "nope", {});
        assert.equal(ack?.ok, false, JSON.stringify(ack));
        assert.equal(ack.error.code, "bad_request");
        assert.match(ack.error.message, /nope/);
        assert.deepEqual((await ok(a, "rooms", {})).rooms, []);
      });
    });
  }
});

describe("flooding", { timeout: 60_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      CHATD_LIMITS_EVENTS_PER_SECOND: "5",
      CHATD_LIMITS_EVENT_BURST: "5",
      CHATD_LIMITS_RATE_STRIKES: "10",
    });
  });
  after(async () => {
    await stopChatd(srv);
  });
  afterEach(() => closeAll());

  for (const transports of TRANSPORTS) {
    it(`rate-limits, then disconnects a socket that keeps flooding, over ${transports[0]}`, async (t) => {
      const [calm, flood, room] = [uid("calm"), uid("flood"), uid("room")];
      const { socket: c } = await connect(srv.url, { auth: { userId: calm }, transports });
      const { socket: f } = await connect(srv.url, { auth: { userId: flood }, transports });
      await ok(c, "join", { room });

      const burst = await Promise.allSettled(Array.from({ length: 20 }, () => req(f, "rooms", {})));
      const acks = burst.filter((r) => r.status === "fulfilled").map((r) => r.value);
      const limited = acks.filter((a) => a?.ok === false && a.error?.code === "rate_limited");
      const passed = acks.filter((a) => a?.ok === true);
      const burstEnded = f.connected ? "still connected" : `disconnected (${disconnectReasons(f)[0]})`;
      t.diagnostic(
        `burst of 20: ${passed.length} ok, ${limited.length} rate_limited, ` +
          `${burst.length - acks.length} unanswered; then ${burstEnded}`,
      );
      if (f.connected) {
        for (let i = 0; i < 100; i++) f.emit("rooms", {}, () => {});
      }
      const reason = await waitDisconnect(f, 10_000);
      t.diagnostic(`flooder disconnected with reason "${reason}"`);

      // The calm client is unaffected.
      assert.deepEqual((await ok(c, "rooms", {})).rooms, [room]);
      await assertServes(srv, transports);

      assert.ok(limited.length > 0, `no rate_limited ack in a burst of 20: ${JSON.stringify(acks)}`);
      assert.ok(passed.length > 0, "not even the burst allowance passed");
      assert.equal(typeof limited[0].error.message, "string");
      assert.equal(reason, "io server disconnect");
    });
  }
});
