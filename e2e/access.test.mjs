// Who may be where: socket ids that are not rooms, room policies, grants
// from the server API, grants in tokens (allowed_rooms, join tokens) and
// token lifetime (expiry, refresh, recovery), with the official
// socket.io-client over polling and WebSocket, on one instance and on two
// instances sharing a Redis (API calls go to the first instance, the
// clients of a user are spread over both).

import { describe, it, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  TRANSPORTS, startChatd, stopChatd, closeAll, connect, connectError, ok, req, nextEvent, expectNoEvent,
  waitDisconnect, uid, signJWT, waitFor, metric, presenceOf,
} from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";
import { tcpProxy } from "./lib/proxy.mjs";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { buildChatd, freePort, REPO_ROOT } from "./lib/chatd.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const SECRET = `e2e-${randomBytes(24).toString("hex")}`;
const API_TOKEN = `e2e-token-${randomBytes(16).toString("hex")}`;
const POLICIES = "dm:*=direct,team-*=granted,news=readonly,*=open";
const ENV = {
  CHATD_AUTH_MODE: "jwt",
  CHATD_AUTH_JWT_SECRET: SECRET,
  CHATD_API_TOKEN: API_TOKEN,
  CHATD_ROOMS_POLICIES: POLICIES,
  CHATD_LIMITS_EVENTS_PER_SECOND: "1000",
  CHATD_LIMITS_EVENT_BURST: "1000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0",
};

const now = () => Math.floor(Date.now() / 1000);

/** token signs a connection token for sub, valid for an hour unless claims say otherwise. */
const token = (sub, claims = {}) => signJWT({ sub, exp: now() + 3600, ...claims }, SECRET);

/** api calls the server API and resolves to {status, body}. */
async function api(srv, method, path, body) {
  const headers = { authorization: `Bearer ${API_TOKEN}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(srv.url + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, body: parsed };
}

/** refused asserts that an acknowledgement is {ok: false} with the code. */
function refused(ack, code) {
  assert.equal(ack.ok, false, `want ${code}, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, code, JSON.stringify(ack));
}

async function startCluster(n, env) {
  const redis = await startRedis();
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(await startChatd({ ...env, CHATD_REDIS_URL: redis.url, CHATD_INSTANCE_ID: `node${i}` }));
  for (const srv of nodes) {
    await waitFor(`${srv.url} to see ${n} nodes`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === n);
  }
  return { nodes, redis };
}

/** accessSuite defines every test over nodes: [A, B], A === B on one instance. */
function accessSuite(name, start) {
  describe(name, { timeout: 180_000 }, () => {
    let A, B, stopAll;
    before(async () => {
      ({ A, B, stopAll } = await start());
    });
    after(async () => {
      closeAll();
      await stopAll?.();
    });
    afterEach(() => closeAll());

    for (const transports of TRANSPORTS) {
      const as = (srv, sub, { claims = {}, name, ...opts } = {}) =>
        connect(srv.url, { auth: { token: token(sub, name ? { name, ...claims } : claims) }, transports, ...opts });

      describe(`over ${transports[0]}`, () => {
        it("socket ids are not rooms: joining one is refused, API targets naming a socket reach that socket only", async () => {
          const alice = await as(A, uid("alice"));
          const bob = await as(B, uid("bob"));
          refused(await req(bob.socket, "join", { room: alice.socket.id }), "bad_request");
          await ok(bob.socket, "join", { room: "general" });

          const toRoomName = await api(A, "POST", "/api/v1/emit", { event: "x", data: 1, sockets: ["general"] });
          assert.equal(toRoomName.status, 400, JSON.stringify(toRoomName.body));
          const gw = await api(A, "POST", "/@connections/general", { n: 1 });
          assert.equal(gw.status, 410, JSON.stringify(gw.body));

          const r = await api(A, "POST", "/api/v1/emit", { event: "to-alice", data: 1, sockets: [alice.socket.id] });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          assert.equal(await nextEvent(alice.socket, "to-alice"), 1);
          assert.equal((await api(A, "POST", `/@connections/${alice.socket.id}`, { n: 2 })).status, 200);
          assert.deepEqual(await nextEvent(alice.socket, "push"), { n: 2 });
          await expectNoEvent(bob.socket, "to-alice");
          await expectNoEvent(bob.socket, "push");
        });

        it("open: anyone joins and posts; presence is answered to anyone, history to members only", async () => {
          const room = uid("open");
          const alice = await as(A, uid("alice"));
          const eve = await as(B, uid("eve"));
          await ok(alice.socket, "join", { room });
          const p = await ok(eve.socket, "presence", { room });
          assert.deepEqual(p.users.map((u) => u.userId), [alice.session.userId]);
          refused(await req(eve.socket, "history", { room }), "forbidden");
          await ok(eve.socket, "join", { room });
          const sent = await ok(eve.socket, "message", { room, text: "hi" });
          assert.equal((await nextEvent(alice.socket, "message", { filter: (m) => m.id === sent.message.id })).text, "hi");
        });

        it("direct: only the users the name lists may join, post, read its history or see its presence", async () => {
          const aliceId = uid("alice"), bobId = uid("bob");
          const room = `dm:${bobId}:${aliceId}`;
          const alice = await as(A, aliceId);
          const bob = await as(B, bobId);
          const carol = await as(B, uid("carol"));
          await ok(alice.socket, "join", { room });
          await ok(bob.socket, "join", { room });
          const sent = await ok(alice.socket, "message", { room, text: "just us" });
          assert.equal((await nextEvent(bob.socket, "message", { filter: (m) => m.id === sent.message.id })).text, "just us");
          for (const [event, payload] of [["join", { room }], ["history", { room }], ["presence", { room }], ["message", { room, text: "let me in" }]]) {
            refused(await req(carol.socket, event, payload), "forbidden");
          }
          await expectNoEvent(carol.socket, "message");
          assert.deepEqual((await ok(bob.socket, "history", { room })).messages.map((m) => m.text), ["just us"]);
        });

        it("readonly: anyone joins and reads; only the server API posts", async () => {
          const alice = await as(A, uid("alice"));
          const bob = await as(B, uid("bob"));
          await ok(alice.socket, "join", { room: "news" });
          await ok(bob.socket, "join", { room: "news" });
          refused(await req(alice.socket, "message", { room: "news", text: "me too" }), "forbidden");
          const posted = await api(A, "POST", "/api/v1/rooms/news/messages", { text: "release 2.0" });
          assert.equal(posted.status, 201, JSON.stringify(posted.body));
          for (const c of [alice, bob]) {
            assert.equal((await nextEvent(c.socket, "message", { filter: (m) => m.id === posted.body.message.id })).text, "release 2.0");
          }
          assert.ok((await ok(bob.socket, "history", { room: "news" })).messages.some((m) => m.id === posted.body.message.id));
        });

        it("granted: a user without a grant is refused join, and presence of a non-member is refused", async () => {
          const room = uid("team");
          const alice = await as(A, uid("alice"));
          refused(await req(alice.socket, "join", { room }), "forbidden");
          refused(await req(alice.socket, "presence", { room }), "forbidden");
          refused(await req(alice.socket, "history", { room }), "forbidden");
        });

        it("grants: PUT and DELETE of a member move every socket of the user at once, on every instance", async () => {
          const room = uid("team");
          const aliceId = uid("alice"), bobId = uid("bob");
          const a1 = await as(A, aliceId, { name: "Alice" });
          const a2 = await as(B, aliceId);
          const bob = await as(B, bobId);
          assert.equal((await api(A, "PUT", `/api/v1/rooms/${room}/members/${bobId}`)).status, 204);
          await nextEvent(bob.socket, "membership", { filter: (m) => m.room === room && m.event === "joined" });

          const put = await api(A, "PUT", `/api/v1/rooms/${room}/members/${aliceId}`);
          assert.equal(put.status, 204, JSON.stringify(put.body));
          for (const s of [a1, a2]) {
            assert.deepEqual(await nextEvent(s.socket, "membership", { filter: (m) => m.room === room }), { room, event: "joined" });
          }
          await nextEvent(bob.socket, "presence", { filter: presenceOf(room, aliceId, "joined") });
          const hello = await ok(bob.socket, "message", { room, text: "welcome" });
          for (const s of [a1, a2]) await nextEvent(s.socket, "message", { filter: (m) => m.id === hello.message.id });
          await ok(a2.socket, "message", { room, text: "thanks" });
          const members = await api(A, "GET", `/api/v1/rooms/${room}/members`);
          assert.equal(members.status, 200);
          assert.deepEqual(members.body.members.map((m) => m.userId).sort(), [aliceId, bobId].sort());
          assert.deepEqual((await api(B, "GET", `/api/v1/users/${aliceId}/rooms`)).body, { rooms: [room] });
          // A new tab starts in the room.
          const a3 = await as(B, aliceId);
          assert.deepEqual(a3.session.rooms, [room]);

          const del = await api(A, "DELETE", `/api/v1/rooms/${room}/members/${aliceId}`);
          assert.equal(del.status, 204, JSON.stringify(del.body));
          for (const s of [a1, a2, a3]) {
            assert.deepEqual(await nextEvent(s.socket, "membership", { filter: (m) => m.room === room && m.event === "left" }), { room, event: "left" });
          }
          await nextEvent(bob.socket, "presence", { filter: presenceOf(room, aliceId, "left") });
          const after = await ok(bob.socket, "message", { room, text: "gone" });
          for (const s of [a1, a2, a3]) await expectNoEvent(s.socket, "message", { filter: (m) => m.id === after.message.id });
          refused(await req(a1.socket, "join", { room }), "forbidden");
          assert.deepEqual((await api(A, "GET", `/api/v1/users/${aliceId}/rooms`)).body, { rooms: [] });
        });

        it("grants: after a DELETE, tokens issued before it no longer admit the user; later ones and a new PUT do", async () => {
          const room = uid("team");
          const aliceId = uid("alice");
          const alice = await as(A, aliceId, { claims: { iat: now(), allowed_rooms: [room] } });
          await ok(alice.socket, "join", { room });
          const early = signJWT({ sub: aliceId, room, iat: now(), exp: now() + 60 }, SECRET);
          assert.equal((await api(A, "DELETE", `/api/v1/rooms/${room}/members/${aliceId}`)).status, 204);
          await nextEvent(alice.socket, "membership", { filter: (m) => m.room === room && m.event === "left" });
          refused(await req(alice.socket, "join", { room }), "forbidden");
          refused(await req(alice.socket, "join", { room, token: early }), "forbidden");
          await sleep(1100); // iat counts whole seconds
          await ok(alice.socket, "join", { room, token: signJWT({ sub: aliceId, room, iat: now(), exp: now() + 60 }, SECRET) });
          assert.equal((await api(A, "DELETE", `/api/v1/rooms/${room}/members/${aliceId}`)).status, 204);
          assert.equal((await api(A, "PUT", `/api/v1/rooms/${room}/members/${aliceId}`)).status, 204);
          await ok(alice.socket, "leave", { room });
          await ok(alice.socket, "join", { room }); // granted again
        });

        it("grants: a direct room admits through the API only the users its name lists", async () => {
          const room = `dm:${uid("x")}:${uid("y")}`;
          const r = await api(A, "PUT", `/api/v1/rooms/${room}/members/${uid("carol")}`);
          assert.equal(r.status, 403, JSON.stringify(r.body));
          assert.equal(r.body.error.code, "forbidden");
        });

        it("allowed_rooms: the claim's patterns let the user join granted rooms; it does not join them", async () => {
          const team = uid("team");
          const alice = await as(A, uid("alice"), { claims: { allowed_rooms: [`${team}*`, "team-fixed"] } });
          assert.deepEqual(alice.session.rooms, []);
          await ok(alice.socket, "join", { room: team });
          await ok(alice.socket, "join", { room: `${team}-2` });
          refused(await req(alice.socket, "join", { room: uid("team") }), "forbidden");
          const err = await connectError(A.url, { auth: { token: token(uid("bob"), { allowed_rooms: ["not a pattern"] }) }, transports });
          assert.equal(err.message, "unauthorized");
          assert.match(err.data.message, /allowed_rooms/);
        });

        it("join tokens: valid for that user and that room only, signed like connection tokens, with exp", async () => {
          const room = uid("team");
          const aliceId = uid("alice");
          const alice = await as(A, aliceId);
          const join = (claims, secret = SECRET) => req(alice.socket, "join", { room, token: signJWT(claims, secret) });
          const expired = await join({ sub: aliceId, room, exp: now() - 10 });
          refused(expired, "forbidden");
          assert.match(expired.error.message, /expired/);
          refused(await join({ sub: aliceId, room: uid("team"), exp: now() + 60 }), "forbidden");
          refused(await join({ sub: uid("bob"), room, exp: now() + 60 }), "forbidden");
          refused(await join({ sub: aliceId, room, exp: now() + 60 }, `forged-${SECRET}`), "forbidden");
          refused(await join({ sub: aliceId, room }), "forbidden"); // no exp
          refused(await req(alice.socket, "join", { room, token: "not.a.token" }), "forbidden");
          const joined = await join({ sub: aliceId, room, exp: now() + 60 });
          assert.equal(joined.ok, true, JSON.stringify(joined));
          assert.deepEqual((await ok(alice.socket, "rooms", {})).rooms, [room]);
          await ok(alice.socket, "message", { room, text: "in with a join token" });
        });

        it("token lifetime: a socket is disconnected at its token's exp", async () => {
          const exp = now() + 2;
          const { socket } = await connect(A.url, { auth: { token: signJWT({ sub: uid("alice"), exp }, SECRET) }, transports });
          const reason = await waitDisconnect(socket, 6000);
          assert.equal(reason, "io server disconnect");
          assert.ok(Date.now() >= exp * 1000 - 50, "disconnected before exp");
          assert.ok(Date.now() <= exp * 1000 + 2500, `disconnected ${Date.now() - exp * 1000} ms after exp`);
        });

        it("token lifetime: refresh {token} with a new token of the same user keeps the socket past exp", async () => {
          const aliceId = uid("alice");
          const oldExp = now() + 2;
          const { socket } = await connect(A.url, { auth: { token: signJWT({ sub: aliceId, exp: oldExp }, SECRET) }, transports });
          refused(await req(socket, "refresh", { token: token(uid("bob")) }), "forbidden");
          refused(await req(socket, "refresh", { token: signJWT({ sub: aliceId, exp: now() + 60 }, `forged-${SECRET}`) }), "unauthorized");
          refused(await req(socket, "refresh", { token: signJWT({ sub: aliceId, exp: now() - 5 }, SECRET) }), "unauthorized");
          refused(await req(socket, "refresh", {}), "bad_request");
          const newExp = now() + 3600;
          assert.deepEqual(await req(socket, "refresh", { token: signJWT({ sub: aliceId, exp: newExp }, SECRET) }), { ok: true, exp: newExp });
          await sleep(Math.max(0, oldExp * 1000 + 1500 - Date.now()));
          assert.equal(socket.connected, true, "disconnected although the token was refreshed");
          await ok(socket, "rooms", {});
        });

        it("recovery: a dropped session resumes while its token is valid, and not after it expired", async () => {
          const proxy = await tcpProxy(A.port);
          try {
            const aliceId = uid("alice");
            const room = uid("room");
            const exp = now() + 4;
            const { socket, session } = await connect(proxy.url, {
              auth: { token: signJWT({ sub: aliceId, exp }, SECRET) }, transports,
              reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0,
            });
            const bob = await as(B, uid("bob"));
            await ok(socket, "join", { room });
            await ok(bob.socket, "join", { room });
            const cut = async () => {
              if (transports.includes("polling")) await waitFor("a pending long-poll", () => proxy.pollPending());
              const gone = nextEvent(bob.socket, "presence", { filter: presenceOf(room, aliceId, "offline") });
              proxy.point(null);
              await gone;
            };
            // Control: within the token's lifetime the session resumes.
            await cut();
            let next = nextEvent(socket, "session", { timeoutMs: 15000 });
            proxy.point(B.port);
            const resumed = await next;
            assert.equal(resumed.recovered, true, JSON.stringify(resumed));
            assert.equal(resumed.socketId, session.socketId);
            // Dropped again, back after exp: no resume, and the old token is refused.
            await cut();
            await sleep(Math.max(0, exp * 1000 + 300 - Date.now()));
            // Attempts made while the proxy pointed nowhere may still fail with
            // a transport error after this line; wait for the server's refusal.
            const refusedConnect = new Promise((resolve) => {
              const onError = (err) => {
                if (err.data === undefined) return;
                socket.off("connect_error", onError);
                resolve(err);
              };
              socket.on("connect_error", onError);
            });
            proxy.point(A.port);
            const err = await refusedConnect;
            assert.equal(err.message, "unauthorized");
            assert.match(err.data.message, /expired/);
            // A fresh token gives a fresh session.
            next = nextEvent(socket, "session", { timeoutMs: 15000 });
            socket.auth = { token: token(aliceId) };
            socket.connect();
            const fresh = await next;
            assert.equal(fresh.recovered, false);
            assert.notEqual(fresh.socketId, session.socketId);
            assert.deepEqual(fresh.rooms, [room]);
            socket.close();
          } finally {
            await proxy.close();
          }
        });

        it("recovery: a dropped session does not resume after the server API disconnected its user", async () => {
          const proxy = await tcpProxy(A.port);
          try {
            const aliceId = uid("alice");
            const room = uid("room");
            const { socket, session } = await connect(proxy.url, {
              auth: { token: token(aliceId) }, transports,
              reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0,
            });
            const tab = await as(B, aliceId);
            const bob = await as(B, uid("bob"));
            await ok(socket, "join", { room });
            await ok(bob.socket, "join", { room });
            if (transports.includes("polling")) await waitFor("a pending long-poll", () => proxy.pollPending());
            proxy.point(null);
            await waitDisconnect(socket);
            // The dropped socket's instance stores its session when it notices the drop.
            await waitFor("the dropped socket to be gone", async () => (await api(A, "GET", `/api/v1/connections/${session.socketId}`)).status === 404);
            assert.equal((await api(A, "DELETE", `/api/v1/users/${aliceId}/connections`)).status, 204);
            assert.equal(await waitDisconnect(tab.socket), "io server disconnect");
            const next = nextEvent(socket, "session", { timeoutMs: 15000 });
            proxy.point(B.port);
            const fresh = await next;
            assert.equal(fresh.recovered, false, JSON.stringify(fresh));
            assert.notEqual(fresh.socketId, session.socketId);
            socket.close();
          } finally {
            await proxy.close();
          }
        });
      });
    }
  });
}

accessSuite("access: one instance", async () => {
  const srv = await startChatd(ENV);
  return { A: srv, B: srv, stopAll: () => stopChatd(srv) };
});

accessSuite("access: two instances on Redis", async () => {
  const { nodes, redis } = await startCluster(2, ENV);
  return {
    A: nodes[0], B: nodes[1],
    stopAll: async () => {
      for (const n of nodes) await stopChatd(n);
      await redis.stop();
    },
  };
});

describe("access: claim checks (auth.jwt.require_exp, audience, issuer)", { timeout: 60_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({
      ...ENV, CHATD_AUTH_JWT_REQUIRE_EXP: "true", CHATD_AUTH_JWT_AUDIENCE: "chatd,chat-web", CHATD_AUTH_JWT_ISSUER: "https://auth.example",
      CHATD_AUTH_JWT_LEEWAY: "5s",
    });
  });
  after(() => stopChatd(srv));
  afterEach(() => closeAll());

  it("refuses tokens without exp, with another aud or iss; accepts the configured ones, within the leeway", async () => {
    const good = { aud: "chat-web", iss: "https://auth.example" };
    for (const [claims, why] of [
      [{ sub: uid("a"), ...good }, /not valid/],
      [{ sub: uid("a"), exp: now() + 60, aud: "other", iss: good.iss }, /not valid/],
      [{ sub: uid("a"), exp: now() + 60, aud: good.aud, iss: "https://evil.example" }, /not valid/],
      [{ sub: uid("a"), exp: now() - 30, ...good }, /expired/],
    ]) {
      const err = await connectError(srv.url, { auth: { token: signJWT(claims, SECRET) } });
      assert.equal(err.message, "unauthorized", JSON.stringify(claims));
      assert.match(err.data.message, why, JSON.stringify(claims));
    }
    const { session } = await connect(srv.url, { auth: { token: signJWT({ sub: "leeway-user", exp: now() - 2, ...good }, SECRET) } });
    assert.equal(session.userId, "leeway-user");
  });
});

// Dev mode off loopback: chatd refuses it unless auth.dev_insecure says so,
// and then warns and the page shows a banner. startChatd always listens on
// 127.0.0.1, so this suite starts the binary itself on 0.0.0.0.
describe("access: dev mode off loopback", { timeout: 60_000 }, () => {
  const run = async (env) => {
    const bin = await buildChatd();
    const port = await freePort();
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CHATD_")));
    const child = spawn(bin, [], { env: { ...inherited, CHATD_LISTEN: `0.0.0.0:${port}`, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, port, url: `http://127.0.0.1:${port}`, output: () => out, exited };
  };

  it("refuses to start without auth.dev_insecure, naming auth.mode and listen", async () => {
    const srv = await run({});
    assert.equal(await srv.exited, 2);
    assert.match(srv.output(), /auth\.mode: "dev" lets anyone sign in as anyone.*listen is "0\.0\.0\.0:\d+"/);
  });

  it("with auth.dev_insecure it starts, warns, and the page shows a banner", async (t) => {
    const srv = await run({ CHATD_AUTH_DEV_INSECURE: "true" });
    try {
      await waitFor("chatd to answer /healthz", async () => {
        try { return (await fetch(`${srv.url}/healthz`)).status === 200; } catch { return false; }
      });
      assert.match(srv.output(), /level=WARN msg="dev mode on a non-loopback address/);
      const cfg = await (await fetch(`${srv.url}/chatd/config.json`)).json();
      assert.equal(cfg.devInsecure, true);
      const page = await fetch(`${srv.url}/`);
      const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
      if (page.status !== 200 || !existsSync(chromiumPath) || !existsSync(path.join(REPO_ROOT, "web", "dist", "index.html"))) {
        t.skip("the web client is not built into this binary, or there is no Chromium");
        return;
      }
      const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
      try {
        const tab = await browser.newPage();
        await tab.goto(`${srv.url}/`);
        const banner = tab.getByTestId("dev-banner");
        await banner.waitFor({ state: "visible", timeout: 10000 });
        assert.match(await banner.textContent(), /anyone who can reach this server can sign in as anyone/);
      } finally {
        await browser.close();
      }
    } finally {
      srv.child.kill("SIGTERM");
      await srv.exited;
    }
  });
});
