// Holding up under abuse, driven against the chatd binary with the official
// socket.io-client: catching up in one `sync` request, with the default
// limits.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startChatd, stopChatd, connect, ok, req, uid, closeAll } from "./lib/chatd.mjs";

/** TOKEN is the server API token of the suites that send through the API. */
const TOKEN = `e2e-limits-${randomBytes(16).toString("hex")}`;

/** post sends a message to room through the server API and resolves to it. */
async function post(srv, room, text) {
  const res = await fetch(`${srv.url}/api/v1/rooms/${encodeURIComponent(room)}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ text, userId: "bob" }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.message;
}

/** inBatches runs fn over items, n at a time. */
async function inBatches(items, n, fn) {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

describe("sync: catching up is one request", () => {
  let srv;
  before(async () => {
    // Default socket limits; the API is only the test's way to fill rooms fast.
    srv = await startChatd({ CHATD_API_TOKEN: TOKEN, CHATD_API_RATE: "2000", CHATD_API_BURST: "2000" });
  });
  after(() => stopChatd(srv));

  it("a user in limits.rooms_per_user (100) rooms reconnecting fresh catches up without rate_limited", async () => {
    const alice = uid("alice");
    const rooms = Array.from({ length: 100 }, (_, i) => `${uid("r")}-${i}`);
    // Joining 100 rooms is paced over 4 tabs: 25 joins each, within a tab's burst.
    const tabs = [];
    for (let i = 0; i < 4; i++) tabs.push((await connect(srv.url, { auth: { userId: alice } })).socket);
    await Promise.all(tabs.map((t, i) => inBatches(rooms.slice(i * 25, i * 25 + 25), 25, (r) => ok(t, "join", { room: r }))));
    const seen = {};
    await inBatches(rooms, 20, async (r) => {
      seen[r] = (await post(srv, r, `${r} seen`)).id;
    });
    for (const t of tabs) t.close();

    // While alice is away, 3 messages land in every room.
    await inBatches(rooms, 20, async (r) => {
      for (let i = 0; i < 3; i++) await post(srv, r, `${r} missed ${i}`);
    });

    const { socket, session } = await connect(srv.url, { auth: { userId: alice } });
    assert.equal(session.recovered, false);
    assert.deepEqual([...session.rooms].sort(), [...rooms].sort());
    const ack = await req(socket, "sync", { rooms: seen });
    assert.equal(ack.ok, true, JSON.stringify(ack).slice(0, 500));
    assert.equal(Object.keys(ack.rooms).length, 100);
    for (const r of rooms) {
      const part = ack.rooms[r];
      assert.deepEqual(part.messages.map((m) => m.text), [0, 1, 2].map((i) => `${r} missed ${i}`), r);
      assert.equal(part.more, undefined, r);
      assert.equal(part.gap, undefined, r);
    }
  });

  it("answers per room: more to fetch, not a member, a bad id", async () => {
    const { socket } = await connect(srv.url, { auth: { userId: uid("carol") } });
    const room = uid("room");
    await ok(socket, "join", { room });
    const first = await post(srv, room, "m0");
    for (let i = 1; i <= 4; i++) await post(srv, room, `m${i}`);
    const ack = await req(socket, "sync", { rooms: { [room]: first.id, [uid("other")]: null, x: 5 }, limit: 2 });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const mine = ack.rooms[room];
    assert.deepEqual(mine.messages.map((m) => m.text), ["m1", "m2"]);
    assert.equal(mine.more, true);
    const others = Object.entries(ack.rooms).filter(([r]) => r !== room).map(([, v]) => v.error.code).sort();
    assert.deepEqual(others, ["bad_request", "forbidden"]);
    const next = await req(socket, "sync", { rooms: { [room]: mine.messages[1].id }, limit: 2 });
    assert.deepEqual(next.rooms[room].messages.map((m) => m.text), ["m3", "m4"]);
    assert.equal(next.rooms[room].more, undefined);

    const bad = await req(socket, "sync", {});
    assert.equal(bad.ok, false);
    assert.equal(bad.error.code, "bad_request");
    closeAll();
  });
});
