// The socket.io Admin UI (@socket.io/admin-ui) against chatd: the /admin
// namespace protocol driven with socket.io-client (login, sessions shared by
// the instances of a cluster, stats and sockets of both instances, live
// socket and room events, join, leave and disconnect through the server
// API's rules, bad input refused without effect, read-only mode, throttled
// logins), and the UI that chatd serves at /admin/, in real headless
// Chromium through playwright-core: log in, see the cluster's sockets and
// rooms, disconnect a socket; a wrong password; read-only mode without
// buttons. It writes a screenshot of the Sockets view (e2e/screenshots/;
// UPDATE_SCREENSHOTS=1 refreshes docs/admin-ui.png, which the README shows).
//
// The UI is embedded into the binary, so it must be copied before chatd is
// built: `make web` (or `npm --prefix web/adminui ci && npm --prefix
// web/adminui run build`). Run alone, this file copies it itself.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { io } from "socket.io-client";
import { chromium } from "playwright-core";
import {
  REPO_ROOT, buildChatd, startChatd, stopChatd, connect, ok, uid, closeAll,
  nextEvent, expectNoEvent, waitDisconnect, waitFor, metric, DEFAULT_TIMEOUT_MS,
  cleanup,
} from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const WAIT_MS = 15000; // every wait for something the page must show, in milliseconds
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === "1"
  ? path.join(REPO_ROOT, "docs")
  : path.join(REPO_ROOT, "e2e", "screenshots");

const USER = "ops";
const PASSWORD = "correct horse battery staple";

/** ensureAdminUIBuilt copies the UI when web/adminui/dist has none yet (run alone). */
function ensureAdminUIBuilt() {
  if (process.env.CHATD_BIN) return; // a prebuilt binary carries its own UI
  const dir = path.join(REPO_ROOT, "web", "adminui");
  if (existsSync(path.join(dir, "dist", "index.html"))) return;
  if (!existsSync(path.join(dir, "node_modules"))) execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, stdio: "inherit" });
  execFileSync("npm", ["run", "build"], { cwd: dir, stdio: "inherit" });
}

let hashed; // the hash of PASSWORD, made once

/** passwordHash makes the bcrypt hash of PASSWORD with the binary's own `chatd hash-password`. */
async function passwordHash() {
  if (!hashed) {
    const bin = await buildChatd();
    hashed = execFileSync(bin, ["hash-password", "-cost", "10"], { input: PASSWORD + "\n", env: {} }).toString().trim();
  }
  return hashed;
}

const adminSockets = new Set();

/**
 * adminConnect opens a socket.io client on the /admin namespace and resolves
 * once connected (rejecting with the connect_error). Every event is kept, so
 * that those sent right after the CONNECT (session, config, server_stats,
 * all_sockets) are not missed; next(event, filter) takes the first match.
 */
function adminConnect(url, auth, { transports = ["websocket"] } = {}) {
  const socket = io(url + "/admin", { auth, transports, forceNew: true, reconnection: false });
  adminSockets.add(socket);
  const events = [];
  const waiters = new Set();
  socket.onAny((event, ...args) => {
    for (const w of waiters) {
      if (w.event === event && w.filter(...args)) {
        waiters.delete(w);
        w.resolve(args);
        return;
      }
    }
    events.push({ event, args });
  });
  const client = {
    socket,
    /** next resolves to the arguments of the first event named event whose arguments pass filter. */
    next(event, filter = () => true, timeoutMs = DEFAULT_TIMEOUT_MS) {
      const i = events.findIndex((e) => e.event === event && filter(...e.args));
      if (i >= 0) return Promise.resolve(events.splice(i, 1)[0].args);
      return new Promise((resolve, reject) => {
        const w = { event, filter, resolve };
        waiters.add(w);
        setTimeout(() => {
          if (waiters.delete(w)) reject(new Error(`no ${event} within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.event))}`));
        }, timeoutMs);
      });
    },
    /** none resolves if no event named event passing filter comes within windowMs. */
    async none(event, filter = () => true, windowMs = 400) {
      await new Promise((r) => setTimeout(r, windowMs));
      const got = events.find((e) => e.event === event && filter(...e.args));
      assert.equal(got, undefined, `unexpected ${event}: ${JSON.stringify(got?.args)}`);
    },
    close() {
      socket.close();
      adminSockets.delete(socket);
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("admin socket did not connect")), DEFAULT_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(client);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
}

/** labelled reads one labelled series of /metrics, 0 when absent. */
async function labelled(url, name, labels) {
  const text = await (await fetch(url + "/metrics")).text();
  const want = name + "{" + Object.entries(labels).sort().map(([k, v]) => `${k}="${v}"`).join(",") + "} ";
  const line = text.split("\n").find((l) => l.startsWith(want));
  return line ? Number(line.slice(want.length)) : 0;
}

/** chatUser connects a dev-mode chat socket and resolves to {socket, session}. */
function chatUser(url, userId) {
  return connect(url, { auth: { userId, name: userId.toUpperCase() } });
}

const sid = (s) => s.session.socketId;

let browser; // launched by the first test that opens the UI

before(() => ensureAdminUIBuilt());

after(async () => {
  for (const s of adminSockets) s.close();
  closeAll();
  await browser?.close();
});

/** openUI opens the served UI in a fresh browser context (own storage) and collects page errors. */
async function openUI(url) {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, reducedMotion: "reduce" });
  ctx.setDefaultTimeout(WAIT_MS);
  const page = await ctx.newPage();
  page.errors = [];
  page.outside = [];
  page.on("pageerror", (err) => page.errors.push(err.message));
  page.on("request", (r) => {
    if (!r.url().startsWith(url) && !r.url().startsWith(url.replace("http", "ws")) && !r.url().startsWith("data:")) page.outside.push(r.url());
  });
  await page.goto(url + "/admin/");
  return page;
}

/** login fills the UI's login form (whose server URL must default to this chatd) and submits it. */
async function login(page, url, password) {
  const server = page.getByLabel("Server URL");
  await server.waitFor();
  assert.equal(await server.inputValue(), url, "the login form's server URL defaults to chatd's own origin");
  await page.getByLabel("Username").fill(USER);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Connect" }).click();
}

describe("admin: the /admin namespace and the UI on a two-instance cluster", () => {
  let redis, A, B, hash;
  // The session of the first test's password login: the later tests log in
  // with it, as the UI does on a reload, without a bcrypt comparison each.
  let session;
  const loginA = () => adminConnect(A.url, { sessionId: session });

  before(async () => {
    hash = await passwordHash();
    redis = await startRedis();
    const env = { CHATD_REDIS_URL: redis.url, CHATD_ADMIN_USERNAME: USER, CHATD_ADMIN_PASSWORD_HASH: hash };
    [A, B] = await Promise.all([
      startChatd({ ...env, CHATD_INSTANCE_ID: "node-a" }),
      startChatd({ ...env, CHATD_INSTANCE_ID: "node-b" }),
    ]);
    for (const srv of [A, B]) {
      await waitFor(`${srv.url} to see 2 nodes`, async () => (await metric(srv.url, "chatd_cluster_nodes")) === 2);
    }
  });

  after(async () => {
    for (const s of adminSockets) s.close();
    await cleanup(() => Promise.all([stopChatd(A), stopChatd(B)]), () => redis?.stop());
  });

  test("a login gets a session, the features, both instances' stats and the cluster's sockets", async () => {
    const room = uid("watched");
    const alice = await chatUser(A.url, uid("alice"));
    const bob = await chatUser(B.url, uid("bob"));
    await ok(alice.socket, "join", { room });
    await ok(bob.socket, "join", { room });

    const admin = await adminConnect(A.url, { username: USER, password: PASSWORD });
    [session] = await admin.next("session");
    assert.match(session, /^[A-Za-z0-9_-]{43}$/, "a 256-bit session id");
    const [config] = await admin.next("config");
    assert.deepEqual([...config.supportedFeatures].sort(), ["AGGREGATED_EVENTS", "ALL_EVENTS", "DISCONNECT", "JOIN", "LEAVE"]);

    const [sockets] = await admin.next("all_sockets");
    const a = sockets.find((s) => s.id === sid(alice));
    const b = sockets.find((s) => s.id === sid(bob));
    assert.ok(a && b, `all_sockets lists the sockets of both instances: ${JSON.stringify(sockets.map((s) => s.id))}`);
    assert.equal(a.nsp, "/");
    assert.equal(a.transport, "websocket");
    assert.match(a.clientId, /^[0-9a-f]{12}$/);
    assert.equal(a.data.userId, alice.session.userId);
    assert.ok(a.rooms.includes(room) && a.rooms.includes(a.id), `rooms ${a.rooms}`);
    assert.ok(b.rooms.includes(room));
    assert.equal(typeof a.handshake.issued, "number");
    assert.equal(a.handshake.auth, undefined, "the handshake's auth is never shown");
    assert.equal(a.handshake.address, "127.0.0.1");

    // Stats come from both instances, every 2 s, through either one.
    const seen = new Set();
    await waitFor("server_stats of both instances", async () => {
      const [st] = await admin.next("server_stats", () => true, 5000);
      assert.equal(typeof st.uptime, "number");
      assert.ok(Array.isArray(st.namespaces) && st.namespaces.some((n) => n.name === "/"));
      assert.ok(Array.isArray(st.aggregatedEvents));
      seen.add(st.serverId);
      return seen.has("node-a") && seen.has("node-b");
    }, 10000);

    // The session logs in on the other instance too, with no new session.
    const again = await adminConnect(B.url, { sessionId: session });
    await again.next("config");
    await again.none("session", () => true, 200);
    again.close();
    admin.close();
  });

  test("socket and room changes of both instances reach a UI on either", async () => {
    const admin = await adminConnect(B.url, { sessionId: session });
    await admin.next("all_sockets");
    const room = uid("live");
    const carol = await chatUser(A.url, uid("carol"));
    const [desc, ts] = await admin.next("socket_connected", (s) => s.id === sid(carol));
    assert.ok(!Number.isNaN(Date.parse(ts)), `timestamp ${ts}`);
    assert.equal(desc.data.userId, carol.session.userId);
    await ok(carol.socket, "join", { room });
    await admin.next("room_joined", (nsp, r, id) => nsp === "/" && r === room && id === sid(carol));
    await ok(carol.socket, "leave", { room });
    await admin.next("room_left", (nsp, r, id) => nsp === "/" && r === room && id === sid(carol));
    carol.socket.disconnect();
    const [, , reason] = await admin.next("socket_disconnected", (nsp, id) => nsp === "/" && id === sid(carol));
    assert.equal(reason, "client namespace disconnect");
    admin.close();
  });

  test("a join or leave of a socket goes to its user; a disconnect ends the socket", async () => {
    const admin = await loginA();
    await admin.next("all_sockets");
    const userId = uid("dave");
    const tab1 = await chatUser(B.url, userId);
    const tab2 = await chatUser(A.url, userId);
    const room = uid("ops-room");

    // One socket named, on the other instance: the user joins, with every tab.
    admin.socket.emit("join", "/", room, sid(tab1));
    const joined = await Promise.all([
      nextEvent(tab1.socket, "membership", { filter: (m) => m.room === room }),
      nextEvent(tab2.socket, "membership", { filter: (m) => m.room === room }),
    ]);
    assert.deepEqual(joined.map((m) => m.event), ["joined", "joined"]);
    const members = await (await fetch(`${A.url}/api/v1/rooms/${room}/members`)).json().catch(() => null);
    if (members?.members) assert.ok(members.members.some((m) => m.userId === userId));
    await admin.next("room_joined", (nsp, r, id) => r === room && id === sid(tab2));

    admin.socket.emit("leave", "/", room, sid(tab2));
    const left = await Promise.all([
      nextEvent(tab1.socket, "membership", { filter: (m) => m.room === room }),
      nextEvent(tab2.socket, "membership", { filter: (m) => m.room === room }),
    ]);
    assert.deepEqual(left.map((m) => m.event), ["left", "left"]);

    // Disconnect one socket on the other instance: it goes, the other tab stays.
    const gone = waitDisconnect(tab1.socket);
    admin.socket.emit("_disconnect", "/", false, sid(tab1));
    assert.equal(await gone, "io server disconnect");
    await admin.next("socket_disconnected", (nsp, id) => id === sid(tab1));
    assert.ok(tab2.socket.connected);
    await waitFor("the requests counted", async () =>
      (await labelled(A.url, "chatd_admin_requests_total", { request: "_disconnect", result: "ok" })) >= 1);
    admin.close();
  });

  test("bad input from the admin namespace is refused without effect", async () => {
    const admin = await loginA();
    await admin.next("all_sockets");
    const erin = await chatUser(A.url, uid("erin"));
    const room = uid("r");
    await ok(erin.socket, "join", { room });
    await nextEvent(erin.socket, "membership", { filter: (m) => m.room === room });
    const before = async (result) => labelled(A.url, "chatd_admin_requests_total", result);
    const bad = [
      ["emit", ["/", sid(erin), "message", { room, text: "forged" }], "emit", "unsupported"],
      ["emit", ["/", undefined, "session", {}], "emit", "unsupported"],
      ["_disconnect", ["/", false, room], "_disconnect", "unknown_socket"], // a room, not a socket
      ["_disconnect", ["/", false], "_disconnect", "malformed"], // the whole namespace
      ["_disconnect", ["/admin", false, sid(erin)], "_disconnect", "unknown_namespace"],
      ["_disconnect", ["/", false, "AAAAAAAAAAAAAAAAAAAAAAAA"], "_disconnect", "unknown_socket"],
      ["leave", ["/", room], "leave", "malformed"], // everyone out of the room
      ["leave", ["/", room, null], "leave", "unknown_socket"],
      ["join", ["/", "user:someone", sid(erin)], "join", "bad_request"],
      ["join", [42, { not: "a room" }, sid(erin)], "join", "malformed"],
    ];
    const counts = [];
    for (const [, , request, result] of bad) counts.push(await before({ request, result }));
    for (const [event, args] of bad) admin.socket.emit(event, ...args);
    await waitFor("every refusal counted", async () => {
      const now = [];
      for (const [, , request, result] of bad) now.push(await before({ request, result }));
      return now.every((n, i) => n > counts[i]);
    }, 10000);
    await expectNoEvent(erin.socket, "message");
    await expectNoEvent(erin.socket, "membership");
    assert.ok(erin.socket.connected, "the chat socket is still connected");
    assert.ok(admin.socket.connected, "the admin socket is still connected");
    admin.close();
  });

  test("chat credentials never log in to /admin, nor an admin session to the chat namespace", async () => {
    const wrong = await adminConnect(A.url, { username: USER, password: "not the password" }).catch((e) => e);
    assert.equal(wrong.message, "invalid credentials");
    for (const auth of [{ userId: "mallory", name: "M" }, { token: "x.y.z" }, {}, { sessionId: "A".repeat(43) }]) {
      const err = await adminConnect(A.url, auth).catch((e) => e);
      assert.equal(err.message, "invalid credentials", `auth ${JSON.stringify(auth)}`);
    }
    // Dev mode lets anyone in as a guest; the admin session makes the chat
    // socket nobody else (in jwt mode it is refused as a missing token).
    const chat = await connect(A.url, { auth: { sessionId: session } });
    assert.match(chat.session.userId, /^guest-/);
  });

  test("in Chromium: log in at /admin/, see both instances' sockets and rooms, disconnect one", async () => {
    const room = uid("lobby");
    const frank = await chatUser(A.url, uid("frank"));
    const grace = await chatUser(B.url, uid("grace"));
    await ok(frank.socket, "join", { room });
    await ok(grace.socket, "join", { room });

    const page = await openUI(A.url);
    await login(page, A.url, PASSWORD);
    await page.locator(".v-dialog").waitFor({ state: "hidden" }); // the login form closes
    await page.goto(A.url + "/admin/#/sockets/");
    // The view slides in: while it does, a row may be there twice.
    const rowOf = (id) => page.locator("tbody tr").filter({ hasText: id }).first();
    await rowOf(sid(frank)).waitFor();
    await rowOf(sid(grace)).waitFor();
    // Once the view has slid in, each socket has one row.
    await page.waitForFunction((id) => [...document.querySelectorAll("tbody tr")].filter((tr) => tr.textContent.includes(id)).length === 1, sid(frank));
    await page.waitForFunction(() => !document.querySelector('[class*="-enter-active"], [class*="-leave-active"]'));
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, "admin-ui.png") });

    // The UI keeps its session in the tab, not where the chat page at /
    // (same origin) keeps its own, and neither sets a cookie.
    const stored = await page.evaluate(() => ({
      local: Object.keys(localStorage), cookie: document.cookie, session: sessionStorage.getItem("session_id"),
    }));
    assert.deepEqual(stored.local, [], "the Admin UI writes nothing to localStorage");
    assert.equal(stored.cookie, "");
    assert.match(stored.session ?? "", /^[A-Za-z0-9_-]{43}$/);
    await page.goto(A.url + "/admin/#/rooms/");
    await page.locator("tbody tr").filter({ hasText: room }).first().waitFor();

    await page.goto(A.url + "/admin/#/sockets/");
    const gone = waitDisconnect(grace.socket);
    await rowOf(sid(grace)).locator("button").click();
    assert.equal(await gone, "io server disconnect");
    await page.goto(A.url + "/admin/#/sockets/");
    await rowOf(sid(frank)).waitFor();
    await page.locator("tbody tr").filter({ hasText: sid(grace) }).first().waitFor({ state: "detached" });
    assert.deepEqual(page.errors, []);
    assert.deepEqual(page.outside, [], "the page requested nothing from another host");
    await page.context().close();
  });
});

describe("admin: read-only mode and failed logins on one instance", () => {
  let srv;

  before(async () => {
    const hash = await passwordHash();
    srv = await startChatd({ CHATD_ADMIN_USERNAME: USER, CHATD_ADMIN_PASSWORD_HASH: hash, CHATD_ADMIN_READONLY: "true" });
  });

  after(async () => {
    for (const s of adminSockets) s.close();
    await stopChatd(srv);
  });

  test("read-only: no write features, the requests refused, no buttons in the UI", async () => {
    const henry = await chatUser(srv.url, uid("henry"));
    const admin = await adminConnect(srv.url, { username: USER, password: PASSWORD }, { transports: ["polling"] });
    const [config] = await admin.next("config");
    assert.deepEqual([...config.supportedFeatures].sort(), ["AGGREGATED_EVENTS", "ALL_EVENTS"]);
    const [sockets] = await admin.next("all_sockets");
    assert.ok(sockets.some((s) => s.id === sid(henry)));
    const before = await labelled(srv.url, "chatd_admin_requests_total", { request: "_disconnect", result: "readonly" });
    admin.socket.emit("_disconnect", "/", true, sid(henry));
    admin.socket.emit("join", "/", uid("r"), sid(henry));
    await waitFor("the refusal counted", async () =>
      (await labelled(srv.url, "chatd_admin_requests_total", { request: "_disconnect", result: "readonly" })) > before);
    await expectNoEvent(henry.socket, "membership");
    assert.ok(henry.socket.connected, "read-only mode disconnected nobody");
    admin.close();

    const page = await openUI(srv.url);
    await login(page, srv.url, PASSWORD);
    await page.locator(".v-dialog").waitFor({ state: "hidden" });
    await page.goto(srv.url + "/admin/#/sockets/");
    const row = page.locator("tbody tr").filter({ hasText: sid(henry) }).first();
    await row.waitFor();
    assert.equal(await row.locator("button").count(), 0, "no disconnect button in read-only mode");
    await row.click();
    await page.getByText(henry.session.userId).first().waitFor();
    assert.equal(await page.locator("button:has(.mdi-logout)").count(), 0, "no disconnect button on the socket's page");
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  test("a wrong password is refused in the UI, and failed logins are throttled", async () => {
    const page = await openUI(srv.url);
    await login(page, srv.url, "not the password");
    await page.getByText("Invalid credentials").waitFor();
    await page.context().close();

    // 10 failures at once per address (one was spent above), then one every
    // 2 s. Guessed session ids fail as well as passwords do, without the
    // cost of a bcrypt comparison each.
    // One login per address is checked at a time: guesses sent in parallel
    // do not each get past the throttle.
    const parallel = await Promise.all([1, 2, 3, 4].map((i) =>
      adminConnect(srv.url, { username: USER, password: "parallel guess " + i }).catch((e) => e)));
    const messages = parallel.map((e) => e.message);
    assert.ok(messages.some((m) => m.startsWith("another login from your address is being checked")), `parallel logins: ${messages}`);
    assert.ok(messages.every((m) => m === "invalid credentials" || m.startsWith("another login")), `parallel logins: ${messages}`);
    let last;
    let failures = 1 + messages.filter((m) => m === "invalid credentials").length;
    for (; failures < 30; failures++) {
      last = await adminConnect(srv.url, { sessionId: "A".repeat(43) }).catch((e) => e);
      if (last.message !== "invalid credentials") break;
    }
    assert.ok(failures >= 10 && failures < 15, `throttled after ${failures} failures, want about 10`);
    assert.match(last.message, /^too many failed logins from your address; retry in \d+ s$/);
    // Even the right password waits now: nothing is checked while throttled.
    const right = await adminConnect(srv.url, { username: USER, password: PASSWORD }).catch((e) => e);
    assert.match(right.message, /^too many failed logins/);
    assert.ok((await labelled(srv.url, "chatd_admin_logins_total", { result: "throttled" })) >= 2);
    assert.ok((await labelled(srv.url, "chatd_limit_refusals_total", { limit: "admin_login_failures" })) >= 2);
  });
});
