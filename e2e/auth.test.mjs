// Connecting in dev mode and in jwt mode (HS256).

import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { TRANSPORTS, startChatd, stopChatd, closeAll, connect, connectError, ok, uid, signJWT } from "./lib/chatd.mjs";

describe("auth: dev mode", { timeout: 60_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({ CHATD_AUTH_MODE: "dev" });
  });
  after(async () => {
    await stopChatd(srv);
  });
  afterEach(() => closeAll());

  for (const transports of TRANSPORTS) {
    describe(`over ${transports[0]}`, () => {
      it("uses the given userId and name", async () => {
        const userId = uid("dev");
        const { socket, session } = await connect(srv.url, { auth: { userId, name: "Dev User" }, transports });
        assert.deepEqual(session, { userId, name: "Dev User", socketId: socket.id, rooms: [], recovered: false });
      });

      it("defaults the name to the userId", async () => {
        const userId = uid("dev");
        const { session } = await connect(srv.url, { auth: { userId }, transports });
        assert.equal(session.userId, userId);
        assert.equal(session.name, userId);
      });

      it("picks a random userId when none is given", async () => {
        const one = await connect(srv.url, { auth: {}, transports });
        const two = await connect(srv.url, { transports }); // no auth object at all
        for (const { session } of [one, two]) {
          assert.equal(typeof session.userId, "string");
          assert.ok(session.userId.length > 0);
          assert.equal(session.name, session.userId);
          assert.deepEqual(session.rooms, []);
        }
        assert.notEqual(one.session.userId, two.session.userId);
        // The picked id is a working user.
        const room = uid("room");
        await ok(one.socket, "join", { room });
        assert.deepEqual((await ok(one.socket, "rooms", {})).rooms, [room]);
      });
    });
  }
});

describe("auth: jwt mode", { timeout: 60_000 }, () => {
  const secret = `e2e-${randomBytes(24).toString("hex")}`; // 52 bytes
  const now = () => Math.floor(Date.now() / 1000);
  let srv;
  before(async () => {
    srv = await startChatd({ CHATD_AUTH_MODE: "jwt", CHATD_AUTH_JWT_SECRET: secret });
  });
  after(async () => {
    await stopChatd(srv);
  });
  afterEach(() => closeAll());

  for (const transports of TRANSPORTS) {
    describe(`over ${transports[0]}`, () => {
      it("accepts a valid HS256 token: userId is sub, name is the name claim", async () => {
        const sub = uid("jwt");
        const token = signJWT({ sub, name: "Jay Doe", exp: now() + 3600 }, secret);
        const { socket, session } = await connect(srv.url, { auth: { token }, transports });
        assert.deepEqual(session, { userId: sub, name: "Jay Doe", socketId: socket.id, rooms: [], recovered: false });
      });

      it("defaults the name to sub", async () => {
        const sub = uid("jwt");
        const token = signJWT({ sub, exp: now() + 3600 }, secret);
        const { session } = await connect(srv.url, { auth: { token }, transports });
        assert.equal(session.userId, sub);
        assert.equal(session.name, sub);
      });

      const refused = {
        "no token": () => ({}),
        "no auth object": () => undefined,
        "a dev-mode userId instead of a token": () => ({ userId: uid("sneaky") }),
        "an empty token": () => ({ token: "" }),
        "a token that is not a string": () => ({ token: 12345 }),
        "garbage": () => ({ token: "not.a.jwt" }),
        "a bad signature": () => ({ token: signJWT({ sub: uid("jwt"), exp: now() + 3600 }, `${secret}-other`) }),
        "an expired exp": () => ({ token: signJWT({ sub: uid("jwt"), exp: now() - 120 }, secret) }),
        "alg none": () => ({ token: signJWT({ sub: uid("jwt"), exp: now() + 3600 }, secret, { alg: "none", hash: null }) }),
        "an HS512 token": () => ({
          token: signJWT({ sub: uid("jwt"), exp: now() + 3600 }, secret, { alg: "HS512", hash: "sha512" }),
        }),
        "a token without sub": () => ({ token: signJWT({ name: "Nobody", exp: now() + 3600 }, secret) }),
      };
      for (const [what, auth] of Object.entries(refused)) {
        it(`refuses ${what} with connect_error "unauthorized"`, async () => {
          const err = await connectError(srv.url, { auth: auth(), transports });
          assert.equal(err.message, "unauthorized");
        });
      }
    });
  }
});
