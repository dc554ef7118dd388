// The client protocol (docs/protocol.md) driven through the real
// chatd binary with socket.io-client, once over long-polling only and once
// over WebSocket only.

import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import {
  TRANSPORTS,
  startChatd,
  stopChatd,
  closeAll,
  connect,
  close,
  req,
  ok,
  nextEvent,
  expectNoEvent,
  uid,
  byId,
  presenceOf,
  inRoom,
  sorted,
  waitFor,
} from "./lib/chatd.mjs";

const PROTOCOL_ENV = {
  CHATD_AUTH_MODE: "dev",
  CHATD_LIMITS_MESSAGE_BYTES: "100",
  CHATD_LIMITS_ROOMS_PER_USER: "5",
  CHATD_LIMITS_EVENTS_PER_SECOND: "10000",
  CHATD_LIMITS_EVENT_BURST: "10000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0",
};

/** assertError checks a failure acknowledgement with the given code and a sentence. */
function assertError(ack, code, what = "") {
  assert.equal(typeof ack, "object", `${what}: ack is not an object: ${JSON.stringify(ack)}`);
  assert.equal(ack.ok, false, `${what}: expected ok:false, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error?.code, code, `${what}: expected error code ${code}, got ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.message, "string", `${what}: error.message is not a string`);
  assert.ok(ack.error.message.length > 0, `${what}: error.message is empty`);
}

/** assertMessage checks the shape of a stored message. */
function assertMessage(m, { room, userId, name, text }) {
  assert.equal(typeof m, "object");
  assert.equal(typeof m.id, "string", `message id must be a string: ${JSON.stringify(m)}`);
  assert.ok(m.id.length > 0);
  assert.equal(m.room, room);
  assert.equal(m.userId, userId);
  assert.equal(m.name, name);
  assert.equal(m.text, text);
  assert.equal(typeof m.ts, "number");
  assert.ok(Number.isInteger(m.ts) && m.ts > 1.6e12, `ts must be milliseconds since the epoch: ${m.ts}`);
}

for (const transports of TRANSPORTS) {
  describe(`protocol over ${transports[0]}`, { timeout: 120_000 }, () => {
    let srv;
    before(async () => {
      srv = await startChatd(PROTOCOL_ENV);
    });
    after(async () => {
      await stopChatd(srv);
    });
    afterEach(() => closeAll());

    /** tab connects one socket of a user (dev auth) and resolves to {socket, session}. */
    const tab = (userId, name) => connect(srv.url, { auth: name ? { userId, name } : { userId }, transports });
    /** sock connects one socket of a user and resolves to the socket. */
    const sock = async (userId, name) => (await tab(userId, name)).socket;

    it("session describes the connection", async () => {
      const alice = uid("alice");
      const { socket, session } = await tab(alice, "Alice");
      assert.equal(session.userId, alice);
      assert.equal(session.name, "Alice");
      assert.equal(session.socketId, socket.id);
      assert.deepEqual(session.rooms, []);
      assert.equal(session.recovered, false);
    });

    describe("join", () => {
      it("acks {ok:true, room} and tells the others in the room", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const b = await sock(bob, "Bob");
        await ok(b, "join", { room });
        const a = await sock(alice, "Alice");
        const ack = await req(a, "join", { room });
        assert.deepEqual(ack, { ok: true, room });
        const p = await nextEvent(b, "presence", { filter: presenceOf(room, alice, "joined") });
        assert.deepEqual(p, { room, userId: alice, name: "Alice", event: "joined" });
      });

      it("joining twice is a success and emits nothing new", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const b = await sock(bob, "Bob");
        await ok(b, "join", { room });
        const a = await sock(alice, "Alice");
        await ok(a, "join", { room });
        await nextEvent(b, "presence", { filter: presenceOf(room, alice, "joined") });
        const again = await req(a, "join", { room });
        assert.deepEqual(again, { ok: true, room });
        await expectNoEvent(b, "presence", { filter: presenceOf(room, alice) });
        const rooms = await ok(a, "rooms", {});
        assert.deepEqual(rooms.rooms, [room]);
      });
    });

    describe("leave", () => {
      it("acks {ok:true, room}, tells the others \"left\" and ends the membership", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const a = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        const ack = await req(a, "leave", { room });
        assert.deepEqual(ack, { ok: true, room });
        const p = await nextEvent(b, "presence", { filter: presenceOf(room, alice, "left") });
        assert.deepEqual(p, { room, userId: alice, name: "Alice", event: "left" });
        assert.deepEqual((await ok(a, "rooms", {})).rooms, []);
        assertError(await req(a, "message", { room, text: "gone" }), "forbidden", "message after leave");
        const sent = await ok(b, "message", { room, text: "after alice left" });
        await expectNoEvent(a, "message", { filter: byId(sent.message.id) });
      });
    });

    describe("message", () => {
      it("is forbidden for a non-member", async () => {
        const [carol, room] = [uid("carol"), uid("room")];
        const c = await sock(carol);
        assertError(await req(c, "message", { room, text: "hi" }), "forbidden");
      });

      it("acks the stored message and emits it to every other socket in the room, not the sender's", async () => {
        const [alice, bob, carol, room] = [uid("alice"), uid("bob"), uid("carol"), uid("room")];
        const a1 = await sock(alice, "Alice");
        const a2 = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        const c = await sock(carol, "Carol"); // not a member
        await ok(a1, "join", { room });
        await ok(b, "join", { room });
        const ack = await req(a1, "message", { room, text: "hello" });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assertMessage(ack.message, { room, userId: alice, name: "Alice", text: "hello" });
        const id = ack.message.id;
        assert.deepEqual(await nextEvent(b, "message", { filter: byId(id) }), ack.message);
        assert.deepEqual(await nextEvent(a2, "message", { filter: byId(id) }), ack.message);
        await Promise.all([
          expectNoEvent(a1, "message", { filter: byId(id) }),
          expectNoEvent(c, "message", { filter: byId(id) }),
        ]);
      });

      it("is idempotent per user, room and clientMsgId", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const a = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        const first = await ok(a, "message", { room, text: "once", clientMsgId: "c-1" });
        assertMessage(first.message, { room, userId: alice, name: "Alice", text: "once" });
        assert.equal(first.message.clientMsgId, "c-1");
        await nextEvent(b, "message", { filter: byId(first.message.id) });
        const second = await ok(a, "message", { room, text: "once", clientMsgId: "c-1" });
        assert.deepEqual(second.message, first.message);
        await expectNoEvent(b, "message", { filter: byId(first.message.id) });
        const other = await ok(a, "message", { room, text: "twice", clientMsgId: "c-2" });
        assert.notEqual(other.message.id, first.message.id);
        const hist = await ok(a, "history", { room });
        assert.deepEqual(
          hist.messages.map((m) => m.id),
          [first.message.id, other.message.id],
        );
      });

      it("accepts a clientMsgId of 64 characters and refuses one of 65", async () => {
        const [alice, room] = [uid("alice"), uid("room")];
        const a = await sock(alice);
        await ok(a, "join", { room });
        await ok(a, "message", { room, text: "x", clientMsgId: "k".repeat(64) });
        assertError(await req(a, "message", { room, text: "y", clientMsgId: "k".repeat(65) }), "bad_request");
        assert.equal((await ok(a, "history", { room })).messages.length, 1);
      });
    });

    describe("typing", () => {
      it("emits {room, userId, name, typing} to the others in the room", async (t) => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const a = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        // typing is volatile: over long-polling the server drops it when the
        // receiver has no poll request pending at that instant, so there the
        // request is repeated (a bounded number of times) until one arrives.
        // Over WebSocket the first one must arrive.
        const attempts = transports[0] === "polling" ? 5 : 1;
        const typed = async (typing) => {
          for (let i = 1; ; i++) {
            assert.deepEqual(await req(a, "typing", { room, typing }), { ok: true });
            try {
              return await nextEvent(b, "typing", {
                filter: (p) => inRoom(room)(p) && p.typing === typing,
                timeoutMs: attempts > 1 ? 1000 : 5000,
              });
            } catch (err) {
              if (i >= attempts) throw err;
              t.diagnostic(`typing ${typing}: attempt ${i} was dropped`);
            }
          }
        };
        assert.deepEqual(await typed(true), { room, userId: alice, name: "Alice", typing: true });
        assert.deepEqual(await typed(false), { room, userId: alice, name: "Alice", typing: false });
        await expectNoEvent(a, "typing", { filter: inRoom(room) });
      });
    });

    describe("history", () => {
      const alice = uid("alice");
      const room = uid("room");
      let a;
      let sent; // the 60 acked messages, in send order
      let ids;
      before(async () => {
        ({ socket: a } = await connect(srv.url, { auth: { userId: alice, name: "Alice" }, transports, persistent: true }));
        await ok(a, "join", { room });
        sent = [];
        for (let i = 0; i < 60; i++) {
          sent.push((await ok(a, "message", { room, text: `m${i}` })).message);
        }
        ids = sent.map((m) => m.id);
        assert.equal(new Set(ids).size, 60, "message ids must be unique");
      });
      after(() => close(a));

      const hist = async (q) => {
        const ack = await ok(a, "history", { room, ...q });
        assert.ok(Array.isArray(ack.messages), JSON.stringify(ack));
        return ack;
      };

      it("is for members only", async () => {
        const c = await sock(uid("carol"));
        assertError(await req(c, "history", { room }), "forbidden");
      });

      it("returns the latest 50 by default, oldest first, as they were acked", async () => {
        const ack = await hist({});
        assert.deepEqual(ack.messages, sent.slice(10));
        assert.ok(!ack.gap, "no gap expected");
      });

      it("returns the latest limit messages", async () => {
        assert.deepEqual((await hist({ limit: 3 })).messages.map((m) => m.id), ids.slice(57));
        assert.deepEqual((await hist({ limit: 100 })).messages.map((m) => m.id), ids);
        assert.deepEqual((await hist({ limit: 1 })).messages.map((m) => m.id), ids.slice(59));
      });

      it("refuses a limit of 0, 101 or \"x\"", async () => {
        for (const limit of [0, 101, "x", -1]) {
          assertError(await req(a, "history", { room, limit }), "bad_request", `limit ${JSON.stringify(limit)}`);
        }
      });

      it("treats before and after as exclusive", async () => {
        assert.deepEqual((await hist({ before: ids[10], limit: 5 })).messages.map((m) => m.id), ids.slice(5, 10));
        assert.deepEqual((await hist({ after: ids[10], limit: 5 })).messages.map((m) => m.id), ids.slice(11, 16));
        assert.deepEqual((await hist({ before: ids[3] })).messages.map((m) => m.id), ids.slice(0, 3));
        assert.deepEqual((await hist({ before: ids[0] })).messages, []);
        assert.deepEqual((await hist({ after: ids[59] })).messages, []);
        assert.deepEqual((await hist({ after: ids[55] })).messages.map((m) => m.id), ids.slice(56));
      });

      it("refuses both before and after, and ids that are not ids", async () => {
        assertError(await req(a, "history", { room, before: ids[20], after: ids[10] }), "bad_request", "both");
        assertError(await req(a, "history", { room, before: "not-an-id" }), "bad_request", "before not-an-id");
        assertError(await req(a, "history", { room, after: "not-an-id" }), "bad_request", "after not-an-id");
      });

      it("pages with after through everything exactly once", async () => {
        const seen = [];
        let cursor = ids[0];
        for (let i = 0; i < 20; i++) {
          const page = await hist({ after: cursor, limit: 7 });
          assert.ok(!page.gap, "no gap expected");
          if (page.messages.length === 0) break;
          assert.ok(page.messages.length <= 7);
          seen.push(...page.messages.map((m) => m.id));
          cursor = page.messages.at(-1).id;
        }
        assert.deepEqual(seen, ids.slice(1));
      });
    });

    describe("history with CHATD_HISTORY_SIZE=5", () => {
      let small;
      before(async () => {
        small = await startChatd({ ...PROTOCOL_ENV, CHATD_HISTORY_SIZE: "5" });
      });
      after(async () => {
        await stopChatd(small);
      });

      it("keeps the latest 5 and marks a gap for an after older than the oldest kept", async () => {
        const room = uid("room");
        const { socket: a } = await connect(small.url, { auth: { userId: uid("alice") }, transports });
        await ok(a, "join", { room });
        const ids = [];
        for (let i = 0; i < 8; i++) ids.push((await ok(a, "message", { room, text: `g${i}` })).message.id);
        const latest = await ok(a, "history", { room });
        assert.deepEqual(latest.messages.map((m) => m.id), ids.slice(3));
        const gap = await ok(a, "history", { room, after: ids[0] });
        assert.equal(gap.gap, true, `expected gap:true, got ${JSON.stringify(gap)}`);
        assert.deepEqual(gap.messages.map((m) => m.id), ids.slice(3));
        const gapPage = await ok(a, "history", { room, after: ids[1], limit: 2 });
        assert.equal(gapPage.gap, true);
        assert.deepEqual(gapPage.messages.map((m) => m.id), ids.slice(3, 5));
        const noGap = await ok(a, "history", { room, after: ids[3] });
        assert.ok(!noGap.gap, `expected no gap, got ${JSON.stringify(noGap)}`);
        assert.deepEqual(noGap.messages.map((m) => m.id), ids.slice(4));
      });
    });

    describe("rooms", () => {
      it("lists the rooms of the user", async () => {
        const alice = uid("alice");
        const rs = [uid("r1"), uid("r2"), uid("r3")];
        const a = await sock(alice);
        assert.deepEqual(await req(a, "rooms", {}), { ok: true, rooms: [] });
        for (const room of rs) await ok(a, "join", { room });
        const ack = await ok(a, "rooms", {});
        assert.deepEqual(sorted(ack.rooms), sorted(rs));
        await ok(a, "leave", { room: rs[1] });
        assert.deepEqual(sorted((await ok(a, "rooms", {})).rooms), sorted([rs[0], rs[2]]));
      });
    });

    describe("presence request", () => {
      it("lists only the members with a connected socket", async () => {
        const [alice, bob, carol, dave, room] = [uid("alice"), uid("bob"), uid("carol"), uid("dave"), uid("room")];
        const a = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        const c = await sock(carol, "Carol");
        await sock(dave, "Dave"); // connected, not a member
        for (const s of [a, b, c]) await ok(s, "join", { room });
        const all = await ok(a, "presence", { room });
        assert.deepEqual(
          [...all.users].sort((x, y) => x.userId.localeCompare(y.userId)),
          [
            { userId: alice, name: "Alice" },
            { userId: bob, name: "Bob" },
            { userId: carol, name: "Carol" },
          ].sort((x, y) => x.userId.localeCompare(y.userId)),
        );
        await close(c);
        await nextEvent(b, "presence", { filter: presenceOf(room, carol, "offline") });
        const some = await ok(a, "presence", { room });
        assert.deepEqual(
          [...some.users].sort((x, y) => x.userId.localeCompare(y.userId)),
          [
            { userId: alice, name: "Alice" },
            { userId: bob, name: "Bob" },
          ].sort((x, y) => x.userId.localeCompare(y.userId)),
        );
      });
    });

    describe("multi-tab", () => {
      it("treats the user, not the socket, as the member", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const t1 = await sock(alice, "Alice");
        const t2 = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        await ok(t1, "join", { room });
        await ok(b, "join", { room });

        // A join from tab 1 put tab 2 in the room.
        const fromBob = await ok(b, "message", { room, text: "hi alice" });
        assert.deepEqual(await nextEvent(t2, "message", { filter: byId(fromBob.message.id) }), fromBob.message);
        assert.deepEqual(await nextEvent(t1, "message", { filter: byId(fromBob.message.id) }), fromBob.message);
        assert.deepEqual((await ok(t2, "rooms", {})).rooms, [room]);

        // A message from tab 1 reaches tab 2 and bob, not tab 1.
        const fromT1 = await ok(t1, "message", { room, text: "from tab 1" });
        assert.deepEqual(await nextEvent(t2, "message", { filter: byId(fromT1.message.id) }), fromT1.message);
        assert.deepEqual(await nextEvent(b, "message", { filter: byId(fromT1.message.id) }), fromT1.message);
        await expectNoEvent(t1, "message", { filter: byId(fromT1.message.id) });

        // A third tab starts in the room without joining.
        const { socket: t3, session } = await tab(alice, "Alice");
        assert.deepEqual(session.rooms, [room]);
        const again = await ok(b, "message", { room, text: "tab 3 too" });
        assert.deepEqual(await nextEvent(t3, "message", { filter: byId(again.message.id) }), again.message);

        // Leaving from one tab removes every tab.
        await ok(t2, "leave", { room });
        await nextEvent(b, "presence", { filter: presenceOf(room, alice, "left") });
        assert.deepEqual((await ok(t1, "rooms", {})).rooms, []);
        assert.deepEqual((await ok(t3, "rooms", {})).rooms, []);
        const after = await ok(b, "message", { room, text: "nobody home" });
        await Promise.all(
          [t1, t2, t3].map((t) => expectNoEvent(t, "message", { filter: byId(after.message.id) })),
        );
        await expectNoEvent(b, "presence", { filter: presenceOf(room, alice, "left") });
      });
    });

    describe("reconnect", () => {
      it("a new connection gets its rooms in session and what it missed from history after", async () => {
        const [alice, bob, r1, r2] = [uid("alice"), uid("bob"), uid("r1"), uid("r2")];
        const a = await sock(alice, "Alice");
        const b = await sock(bob, "Bob");
        await ok(a, "join", { room: r1 });
        await ok(a, "join", { room: r2 });
        await ok(b, "join", { room: r1 });
        const seen = await ok(b, "message", { room: r1, text: "before" });
        await nextEvent(a, "message", { filter: byId(seen.message.id) });
        await close(a);

        const missed = [];
        for (const text of ["while away 1", "while away 2", "while away 3"]) {
          missed.push((await ok(b, "message", { room: r1, text })).message);
        }

        const { session, socket: a2 } = await tab(alice, "Alice");
        assert.deepEqual(sorted(session.rooms), sorted([r1, r2]));
        assert.equal(session.recovered, false);
        const hist = await ok(a2, "history", { room: r1, after: seen.message.id });
        assert.deepEqual(hist.messages, missed);
        assert.ok(!hist.gap);
      });
    });

    describe("presence online/offline", () => {
      it("online on the first socket, offline after the last, once each", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const b = await sock(bob, "Bob");
        await ok(b, "join", { room });
        const a0 = await sock(alice, "Alice");
        await ok(a0, "join", { room });
        await nextEvent(b, "presence", { filter: presenceOf(room, alice, "joined") });
        await close(a0);
        await nextEvent(b, "presence", { filter: presenceOf(room, alice, "offline") });

        const a1 = await sock(alice, "Alice");
        const online = await nextEvent(b, "presence", { filter: presenceOf(room, alice, "online") });
        assert.deepEqual(online, { room, userId: alice, name: "Alice", event: "online" });
        const a2 = await sock(alice, "Alice");
        await expectNoEvent(b, "presence", { filter: presenceOf(room, alice, "online") });

        await close(a1);
        await expectNoEvent(b, "presence", { filter: presenceOf(room, alice, "offline") });
        await close(a2);
        const offline = await nextEvent(b, "presence", { filter: presenceOf(room, alice, "offline") });
        assert.deepEqual(offline, { room, userId: alice, name: "Alice", event: "offline" });
        await expectNoEvent(b, "presence", { filter: presenceOf(room, alice) });
      });
    });

    describe("names and limits", () => {
      it("refuses bad room names with bad_request", async () => {
        const a = await sock(uid("alice"));
        for (const room of ["", "r".repeat(65), "bad room!", "user:x", "é", "a/b"]) {
          assertError(await req(a, "join", { room }), "bad_request", `join ${JSON.stringify(room)}`);
        }
        const longest = "r".repeat(63) + String(process.pid % 10);
        assert.deepEqual(await req(a, "join", { room: longest }), { ok: true, room: longest });
        await ok(a, "join", { room: `A-z_0.9:${uid("x")}` });
        assert.equal((await ok(a, "rooms", {})).rooms.length, 2);
      });

      it("refuses empty text with bad_request and text over CHATD_LIMITS_MESSAGE_BYTES with too_large", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const a = await sock(alice);
        const b = await sock(bob);
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        assertError(await req(a, "message", { room, text: "" }), "bad_request", "empty text");
        // 51 two-byte characters are 102 bytes: too large although only 51 characters.
        assertError(await req(a, "message", { room, text: "é".repeat(51) }), "too_large", "102 bytes");
        assertError(await req(a, "message", { room, text: "x".repeat(101) }), "too_large", "101 bytes");
        await expectNoEvent(b, "message", { filter: inRoom(room) });
        const fits = await ok(a, "message", { room, text: "é".repeat(50) });
        assert.equal(fits.message.text, "é".repeat(50));
        assert.deepEqual((await ok(a, "history", { room })).messages, [fits.message]);
      });

      it("refuses a join over CHATD_LIMITS_ROOMS_PER_USER with too_large and joins nothing", async () => {
        const [alice, bob] = [uid("alice"), uid("bob")];
        const a = await sock(alice);
        const rs = [1, 2, 3, 4, 5].map((i) => uid(`cap${i}`));
        for (const room of rs) await ok(a, "join", { room });
        const sixth = uid("cap6");
        const b = await sock(bob);
        await ok(b, "join", { room: sixth });
        assertError(await req(a, "join", { room: sixth }), "too_large", "6th room");
        await expectNoEvent(b, "presence", { filter: presenceOf(sixth, alice) });
        assert.deepEqual(sorted((await ok(a, "rooms", {})).rooms), sorted(rs));
        assertError(await req(a, "message", { room: sixth, text: "in?" }), "forbidden", "message to 6th room");
        // Re-joining a room the user is already in is still a success.
        assert.deepEqual(await req(a, "join", { room: rs[0] }), { ok: true, room: rs[0] });
      });

      it("refuses malformed payloads with bad_request and changes nothing", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const a = await sock(alice);
        const b = await sock(bob);
        await ok(a, "join", { room });
        await ok(b, "join", { room });
        const kept = await ok(a, "message", { room, text: "kept" });
        await nextEvent(b, "message", { filter: byId(kept.message.id) });
        const other = uid("other");
        const cases = [
          ["join"],
          ["join", null],
          ["join", other],
          ["join", 42],
          ["join", [other]],
          ["join", {}],
          ["join", { room: 5 }],
          ["join", { room: [other] }],
          ["join", { room: { name: other } }],
          ["join", { room: null }],
          ["leave"],
          ["leave", {}],
          ["leave", { room: 1 }],
          ["leave", room],
          ["message"],
          ["message", "hi"],
          ["message", { room }],
          ["message", { text: "no room" }],
          ["message", { room, text: 5 }],
          ["message", { room, text: ["a"] }],
          ["message", { room, text: null }],
          ["message", { room, text: "x", clientMsgId: 7 }],
          ["message", { room: [room], text: "x" }],
          ["typing", { room, typing: "yes" }],
          ["typing", { room }],
          ["typing", "x"],
          ["history", "room"],
          ["history", {}],
          ["history", { room: 5 }],
          ["history", { room, limit: "x" }],
          ["history", { room, limit: 1.5 }],
          ["history", { room, before: 5 }],
          ["history", { room, after: { id: kept.message.id } }],
          ["presence"],
          ["presence", {}],
          ["presence", { room: 5 }],
          ["rooms", "x"],
          ["rooms", 5],
          ["rooms"],
          ["rooms", null],
        ];
        for (const [event, ...payload] of cases) {
          const ack = await req(a, event, ...payload);
          assertError(ack, "bad_request", `${event} ${JSON.stringify(payload)}`);
        }
        assert.deepEqual((await ok(a, "rooms", {})).rooms, [room]);
        assert.deepEqual((await ok(a, "history", { room })).messages, [kept.message]);
        await Promise.all([
          expectNoEvent(b, "message", { filter: inRoom(room) }),
          expectNoEvent(b, "presence", { filter: presenceOf(room, alice) }),
          expectNoEvent(b, "typing", { filter: inRoom(room) }),
        ]);
      });

      it("carries out a request without a callback", async () => {
        const [alice, bob, room] = [uid("alice"), uid("bob"), uid("room")];
        const b = await sock(bob);
        await ok(b, "join", { room });
        const a = await sock(alice);
        a.emit("join", { room });
        await nextEvent(b, "presence", { filter: presenceOf(room, alice, "joined") });
        assert.deepEqual((await ok(a, "rooms", {})).rooms, [room]);
        a.emit("message", { room, text: "fire and forget" });
        const m = await nextEvent(b, "message", { filter: inRoom(room) });
        assert.equal(m.text, "fire and forget");
        assert.equal(m.userId, alice);
      });
    });
  });
}

// socket.io-client's default: long-polling first, then an upgrade to
// WebSocket (chatd's own WebSocket transport) in the middle of a session.
describe("protocol over long-polling upgraded to WebSocket", { timeout: 60_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd(PROTOCOL_ENV);
  });
  after(async () => {
    closeAll();
    await stopChatd(srv);
  });

  it("keeps the socket and the order of messages across the upgrade", async () => {
    const room = uid("room");
    const { socket: a } = await connect(srv.url, { auth: { userId: uid("a") }, transports: ["polling", "websocket"] });
    const { socket: b } = await connect(srv.url, { auth: { userId: uid("b") }, transports: ["websocket"] });
    const engine = a.io.engine;
    const upgraded = engine.transport.name === "websocket" ? Promise.resolve() : new Promise((r) => engine.once("upgrade", r));
    await ok(a, "join", { room });
    await ok(b, "join", { room });
    const sid = a.id;
    const got = [];
    a.on("message", (m) => got.push(m.id));
    // Messages sent while the upgrade is under way and after it.
    const sent = [];
    for (let i = 0; i < 20; i++) sent.push((await ok(b, "message", { room, text: `m${i}` })).message.id);
    await upgraded;
    assert.equal(engine.transport.name, "websocket");
    for (let i = 20; i < 40; i++) sent.push((await ok(b, "message", { room, text: `m${i}` })).message.id);
    await waitFor("a to receive the 40 messages", () => got.length >= 40, 10000);
    assert.deepEqual(got, sent, "messages lost, repeated or reordered across the upgrade");
    assert.equal(a.id, sid, "the socket id changed across the upgrade");
    const back = await ok(a, "message", { room, text: "from a over WebSocket" });
    await nextEvent(b, "message", { filter: byId(back.message.id) });
  });
});
