// The web client that chatd serves at "/", driven in real headless Chromium
// (Debian's /usr/bin/chromium) through playwright-core: sign-in by deep link
// and by token, chat between two users, presence, typing, unread counts,
// history on scroll back, tabs of one user in step, escaping of message text,
// and, on a two-instance cluster, a killed instance whose pages reconnect and
// show every message. It also writes desktop and phone screenshots
// (e2e/screenshots/; UPDATE_SCREENSHOTS=1 refreshes web/screenshots/, which the README shows).
//
// The page is embedded into the binary, so the client must be built before
// chatd is: `npm --prefix web ci && npm --prefix web run build`. Run alone
// (`node --test web.test.mjs`) this file builds the client itself when
// web/dist has no index.html.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import {
  REPO_ROOT, startChatd, stopChatd, connect, ok, uid, closeAll, signJWT,
} from "./lib/chatd.mjs";
import { startRedis } from "./lib/redis.mjs";
import { tcpProxy } from "./lib/proxy.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const WAIT_MS = 15000; // every wait for something the page must show, in milliseconds
// The run writes its screenshots to e2e/screenshots/ (ignored by git); with
// UPDATE_SCREENSHOTS=1 it refreshes the ones the README shows, in web/screenshots/.
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === "1"
  ? path.join(REPO_ROOT, "web", "screenshots")
  : path.join(REPO_ROOT, "e2e", "screenshots");
// Seeding history sends many messages from one socket: lift the per-socket rate.
const FAST = { CHATD_LIMITS_EVENTS_PER_SECOND: "1000", CHATD_LIMITS_EVENT_BURST: "2000", CHATD_LIMITS_USER_EVENTS_PER_SECOND: "0" };

/** ensureWebBuilt builds the client when web/dist has no bundle yet (run alone). */
function ensureWebBuilt() {
  if (process.env.CHATD_BIN) return; // a prebuilt binary carries its own client
  if (existsSync(path.join(REPO_ROOT, "web", "dist", "index.html"))) return;
  const web = path.join(REPO_ROOT, "web");
  if (!existsSync(path.join(web, "node_modules"))) execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: web, stdio: "inherit" });
  execFileSync("npm", ["run", "build"], { cwd: web, stdio: "inherit" });
}

/** assertPageServed fails with a useful message unless GET / serves the built client. */
async function assertPageServed(url) {
  const res = await fetch(url + "/?room=general");
  const body = await res.text();
  if (res.status === 503) {
    assert.fail(`GET / answered 503: this chatd was compiled before the web client was built. Run ` +
      "`npm --prefix web ci && npm --prefix web run build`, then rebuild chatd.");
  }
  assert.equal(res.status, 200, `GET / answered ${res.status}: is web.Handler() mounted at "/"?\n${body.slice(0, 300)}`);
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(body, /app\.js/);
  assert.equal(res.headers.get("cache-control"), "no-cache");
}

let browser;

before(async () => {
  ensureWebBuilt();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  closeAll();
  await browser?.close();
});

/**
 * openPage opens a new browser context (a separate person: own storage) and
 * a page at url; it collects page errors and dialogs so tests can assert
 * that there were none.
 */
async function openPage(url, { viewport = { width: 1280, height: 800 }, mobile = false, context } = {}) {
  const ctx = context ?? (await browser.newContext({
    viewport,
    deviceScaleFactor: mobile ? 2 : 1,
    isMobile: mobile,
    hasTouch: mobile,
    reducedMotion: "reduce",
  }));
  ctx.setDefaultTimeout(WAIT_MS);
  const page = await ctx.newPage();
  page.errors = [];
  page.dialogs = [];
  page.on("pageerror", (err) => page.errors.push(err.message));
  page.on("dialog", (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.goto(url);
  return page;
}

/** signedIn waits until the page has a session and shows room open. */
async function signedIn(page, room) {
  await page.locator('#conn[data-state="connected"]').waitFor({ state: "attached" });
  if (room) await page.locator(`.room.active[data-room="${room}"]`).waitFor({ state: "attached" });
}

/** joinAs opens base with a deep link that signs in as name and opens room. */
async function joinAs(base, name, room, opts) {
  const page = await openPage(`${base}/?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}`, opts);
  await signedIn(page, room);
  return page;
}

/** send types text into the message box and presses Enter. */
async function send(page, text) {
  await page.locator("#message-input").fill(text);
  await page.locator("#message-input").press("Enter");
}

/** shown waits until a confirmed message with exactly this text is in the open room. */
function shown(page, text) {
  return page.locator("#messages .msg:not(.pending) .text").filter({ hasText: exactly(text) }).first().waitFor();
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
}

/** texts lists the texts of the confirmed messages of the open room, in order. */
function texts(page) {
  return page.locator("#messages .msg:not(.pending) .text").allTextContents();
}

/** person waits until the presence list shows userId (or, with gone, no longer shows it). */
function person(page, userId, gone = false) {
  return page.locator(`#people-list .person[data-user="${userId}"]`).waitFor({ state: gone ? "detached" : "attached" });
}

function assertClean(...pages) {
  for (const p of pages) {
    assert.deepEqual(p.errors, [], "page errors");
    assert.deepEqual(p.dialogs, [], "dialogs opened by the page");
  }
}

async function closePages(...pages) {
  for (const p of pages) await p?.context().close();
}

describe("web client on one chatd", () => {
  let srv;
  before(async () => {
    srv = await startChatd({ ...FAST });
    await assertPageServed(srv.url);
  });
  after(async () => {
    await stopChatd(srv);
  });

  test("two people chat from deep links: messages, presence, typing, Enter to send", async () => {
    const room = uid("general");
    const alice = await joinAs(srv.url, "Alice", room);
    const bob = await joinAs(srv.url, "Bob", room);
    try {
      // The deep link signed alice in at once; the shared link keeps only the room.
      const url = new URL(alice.url());
      assert.equal(url.searchParams.get("room"), room);
      assert.equal(url.searchParams.get("name"), null);
      assert.equal(await alice.locator("#me-name").textContent(), "Alice");

      // Presence: each sees both.
      await person(alice, "bob");
      await person(bob, "alice");
      await person(bob, "bob");

      await send(alice, "hello bob");
      await shown(bob, "hello bob");
      await shown(alice, "hello bob");
      assert.equal(await alice.locator("#message-input").inputValue(), "", "the box is empty after sending");

      // Typing shows while bob types and goes when his box is empty again.
      await bob.locator("#message-input").pressSequentially("hi al", { delay: 20 });
      await alice.locator("#typing").filter({ hasText: "Bob is typing" }).waitFor();
      await bob.locator("#message-input").fill("");
      await bob.locator("#message-input").dispatchEvent("input");
      await alice.locator("#typing").filter({ hasText: "typing" }).waitFor({ state: "detached" });

      // Shift+Enter makes a new line; Enter sends.
      const box = bob.locator("#message-input");
      await box.pressSequentially("line one");
      await box.press("Shift+Enter");
      await box.pressSequentially("line two");
      await box.press("Enter");
      await shown(alice, "line one\nline two");

      assert.deepEqual(await texts(alice), ["hello bob", "line one\nline two"]);
      assert.deepEqual(await texts(bob), ["hello bob", "line one\nline two"]);
      assertClean(alice, bob);
    } finally {
      await closePages(alice, bob);
    }
  });

  test("a message with HTML in it is shown as text", async () => {
    const room = uid("xss");
    const alice = await joinAs(srv.url, "Alice", room);
    const bob = await joinAs(srv.url, "Bob", room);
    try {
      const attack = "<img src=x onerror=alert(1)>";
      const attack2 = `<b>bold?</b><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`;
      await send(alice, attack);
      await send(alice, attack2);
      for (const page of [bob, alice]) {
        await shown(page, attack);
        await shown(page, attack2);
        assert.equal(await page.locator("#messages img, #messages script, #messages b").count(), 0, "markup from a message reached the DOM");
        assert.equal(await page.evaluate(() => window.__pwned), undefined);
        await page.getByText(attack, { exact: true }).waitFor({ state: "visible" });
      }
      assertClean(alice, bob);
    } finally {
      await closePages(alice, bob);
    }
  });

  test("unread counts grow for rooms that are not open and clear when opened", async () => {
    const room = uid("team");
    const other = uid("side");
    const alice = await joinAs(srv.url, "Alice", room);
    const bob = await joinAs(srv.url, "Bob", room);
    try {
      // Bob joins a second room with the keyboard, which opens it.
      await bob.locator("#join-toggle").click();
      await bob.locator("#join-input").fill(other);
      await bob.locator("#join-input").press("Enter");
      await bob.locator(`.room.active[data-room="${other}"]`).waitFor();

      const badge = bob.locator(`.room[data-room="${room}"] .badge`);
      await send(alice, "first while away");
      await badge.filter({ hasText: exactly("1") }).waitFor();
      await send(alice, "second while away");
      await badge.filter({ hasText: exactly("2") }).waitFor();
      assert.match(await bob.title(), /^\(2\) /);
      assert.equal(await bob.locator(`.room[data-room="${other}"] .badge`).count(), 0);

      await bob.locator(`.room[data-room="${room}"]`).click();
      await shown(bob, "second while away");
      await badge.waitFor({ state: "detached" });
      assert.deepEqual(await texts(bob), ["first while away", "second while away"]);
      assert.doesNotMatch(await bob.title(), /^\(/);
      assertClean(alice, bob);
    } finally {
      await closePages(alice, bob);
    }
  });

  test("scrolling back loads older history until the first message", async () => {
    const room = uid("history");
    const total = 130;
    const { socket } = await connect(srv.url, { auth: { userId: uid("seeder"), name: "Seeder" } });
    await ok(socket, "join", { room });
    for (let i = 1; i <= total; i++) await ok(socket, "message", { room, text: `seed ${i}` });

    const carol = await joinAs(srv.url, "Carol", room);
    try {
      await shown(carol, `seed ${total}`);
      const first = await texts(carol);
      assert.ok(first.length < total, `the first page shows only the latest messages, got ${first.length}`);
      assert.equal(first.at(-1), `seed ${total}`);

      // Scroll to the top until the very first message has been loaded.
      await carol.waitForFunction(() => {
        const list = document.getElementById("messages");
        list.scrollTop = 0;
        return [...list.querySelectorAll(".text")].some((t) => t.textContent === "seed 1");
      }, null, { polling: 100, timeout: WAIT_MS });
      await carol.locator(".room-start").waitFor();
      const all = await texts(carol);
      assert.deepEqual(all, Array.from({ length: total }, (_, i) => `seed ${i + 1}`), "every message once, in order");
      assertClean(carol);
    } finally {
      socket.close();
      await closePages(carol);
    }
  });

  test("tabs of one person stay in step", async () => {
    const room = uid("tabs");
    const second = uid("tabs2");
    const tab1 = await joinAs(srv.url, "Dana", room);
    // Same browser context: the second tab shares storage, so it is Dana too.
    const tab2 = await openPage(`${srv.url}/?room=${room}`, { context: tab1.context() });
    const erin = await joinAs(srv.url, "Erin", room);
    try {
      await signedIn(tab2, room);
      assert.equal(await tab2.locator("#me-id").textContent(), "@dana");

      await send(tab1, "from tab one");
      await shown(tab2, "from tab one");
      await shown(erin, "from tab one");
      await send(erin, "to both tabs");
      await shown(tab1, "to both tabs");
      await shown(tab2, "to both tabs");

      // A room joined in one tab appears in the other; leaving removes it.
      await tab1.bringToFront(); // a background tab draws no frames, which clicks wait for
      await tab1.locator("#join-toggle").click();
      await tab1.locator("#join-input").fill(second);
      await tab1.locator("#join-input").press("Enter");
      await tab1.locator(`.room.active[data-room="${second}"]`).waitFor();
      await tab2.locator(`.room[data-room="${second}"]`).waitFor();
      await tab1.locator("#leave-btn").click();
      await tab1.locator(`.room[data-room="${second}"]`).waitFor({ state: "detached" });
      await tab2.locator(`.room[data-room="${second}"]`).waitFor({ state: "detached" });
      assertClean(tab1, tab2, erin);
    } finally {
      await closePages(tab1, erin);
    }
  });

  test("devices of one person stay in step through the membership event", async () => {
    const room = uid("dev");
    const second = uid("dev2");
    // Separate browser contexts share no storage and no BroadcastChannel:
    // only the server can tell the second device about the join.
    const phone = await joinAs(srv.url, "Fay", room);
    const laptop = await joinAs(srv.url, "Fay", room);
    try {
      await laptop.bringToFront();
      await laptop.locator("#join-toggle").click();
      await laptop.locator("#join-input").fill(second);
      await laptop.locator("#join-input").press("Enter");
      await laptop.locator(`.room.active[data-room="${second}"]`).waitFor();
      await phone.locator(`.room[data-room="${second}"]`).waitFor({ timeout: 5000 });
      await laptop.locator("#leave-btn").click();
      await phone.locator(`.room[data-room="${second}"]`).waitFor({ state: "detached", timeout: 5000 });
      assertClean(phone, laptop);
    } finally {
      await closePages(phone, laptop);
    }
  });

  test("writes the desktop and phone screenshots", async () => {
    // A fresh server, so the pictures show a plain room name and nothing else.
    const shot = await startChatd({ ...FAST });
    const room = "general";
    let pages = [];
    try {
      const { socket: s1 } = await connect(shot.url, { auth: { userId: "maria", name: "Maria Chen" } });
      await ok(s1, "join", { room });
      await ok(s1, "join", { room: "releases" });
      await ok(s1, "join", { room: "design" });
      const alice = await joinAs(shot.url, "Alice Moreau", room);
      const bob = await joinAs(shot.url, "Bob", room, { viewport: { width: 390, height: 844 }, mobile: true });
      pages = [alice, bob];
      await alice.locator("#join-toggle").click();
      await alice.locator("#join-input").fill("releases");
      await alice.locator("#join-input").press("Enter");
      await alice.locator('.room.active[data-room="releases"]').waitFor();
      await alice.locator('.room[data-room="general"]').click();
      await alice.locator('.room.active[data-room="general"]').waitFor();

      await ok(s1, "message", { room, text: "Morning! The 2.4 release candidate is up on staging." });
      await send(alice, "Thanks Maria. I ran the smoke tests, all green except the export job.");
      await send(alice, "Looking into it now.");
      await send(bob, "The export job needs the new bucket policy, I can push it after standup.");
      await ok(s1, "message", { room, text: "Perfect. Release notes draft: https://example.com/notes/2.4" });
      await send(alice, "<b>Reminder:</b> tags in messages show as plain text, like <this>");
      await ok(s1, "message", { room: "releases", text: "2.4.0-rc1 tagged" });
      await ok(s1, "message", { room: "releases", text: "Changelog updated" });
      await shown(bob, "<b>Reminder:</b> tags in messages show as plain text, like <this>");
      await alice.locator('.room[data-room="releases"] .badge').filter({ hasText: "2" }).waitFor();
      await person(alice, "maria");
      await person(bob, "maria");
      await bob.locator("#message-input").pressSequentially("On it", { delay: 20 });
      await alice.locator("#typing").filter({ hasText: "Bob is typing" }).waitFor();
      await alice.locator("#message-input").blur();

      mkdirSync(SCREENSHOTS, { recursive: true });
      await alice.screenshot({ path: path.join(SCREENSHOTS, "desktop.png") });
      await bob.locator("#message-input").blur();
      await bob.screenshot({ path: path.join(SCREENSHOTS, "phone.png") });
      assert.ok(existsSync(path.join(SCREENSHOTS, "desktop.png")));
      assert.ok(existsSync(path.join(SCREENSHOTS, "phone.png")));

      // The phone layout: rooms and people are drawers, opened with labelled buttons.
      assert.equal(await bob.locator("#sidebar").isVisible(), false);
      await bob.getByRole("button", { name: "Open rooms" }).click();
      await bob.locator('#sidebar .room[data-room="general"]').waitFor({ state: "visible" });
      await bob.keyboard.press("Escape");
      await bob.locator("#sidebar").waitFor({ state: "hidden" });
      await bob.getByRole("button", { name: /Who is online/ }).click();
      await bob.locator('#people .person[data-user="maria"]').waitFor({ state: "visible" });
      assertClean(alice, bob);
      s1.close();
    } finally {
      await closePages(...pages);
      await stopChatd(shot);
    }
  });
});

describe("web client in jwt mode", () => {
  const secret = "web-test-secret-that-is-long-enough-0123456789";
  let srv;
  before(async () => {
    srv = await startChatd({ CHATD_AUTH_MODE: "jwt", CHATD_AUTH_JWT_SECRET: secret });
    await assertPageServed(srv.url);
  });
  after(async () => {
    await stopChatd(srv);
  });

  test("signs in with a token, refuses a bad one, and opens the linked room", async () => {
    const room = uid("jwt");
    const page = await openPage(`${srv.url}/?room=${room}`);
    try {
      await page.getByLabel("Access token").waitFor();
      assert.equal(await page.getByLabel("Your name").isVisible(), false, "no name field in jwt mode");

      await page.getByLabel("Access token").fill(signJWT({ sub: "erin", exp: Math.floor(Date.now() / 1000) + 3600 }, "not-the-secret-but-long-enough-000000"));
      await page.getByRole("button", { name: "Continue" }).click();
      await page.locator("#signin-error").filter({ hasText: "refused" }).waitFor();

      const token = signJWT({ sub: "erin", name: "Erin Ito", exp: Math.floor(Date.now() / 1000) + 3600 }, secret);
      await page.getByLabel("Access token").fill(token);
      await page.getByLabel("Access token").press("Enter");
      await signedIn(page, room);
      assert.equal(await page.locator("#me-name").textContent(), "Erin Ito");
      assert.equal(await page.locator("#me-id").textContent(), "@erin");
      await send(page, "signed in with a token");
      await shown(page, "signed in with a token");
      assertClean(page);
    } finally {
      await closePages(page);
    }
  });
});

describe("web client across a lost connection", () => {
  // Alice reaches chatd through a proxy that the test cuts; bob stays connected.
  for (const [recovery, outcome] of [["2m", "recovered"], ["0", "caught-up"]]) {
    test(`with recovery.max_disconnection=${recovery} the page reconnects and shows what it missed (${outcome})`, async () => {
      const srv = await startChatd({ CHATD_RECOVERY_MAX_DISCONNECTION: recovery });
      const proxy = await tcpProxy(srv.port);
      const room = uid("flaky");
      let alice;
      let bob;
      try {
        alice = await joinAs(proxy.url, "Alice", room);
        bob = await joinAs(srv.url, "Bob", room);
        await send(alice, "before the cut");
        await shown(bob, "before the cut");

        proxy.point(null);
        await alice.locator('#conn[data-state="reconnecting"]').waitFor({ state: "attached" });
        await alice.locator('#banner[data-state="reconnecting"]').waitFor();
        const missed = Array.from({ length: 5 }, (_, i) => `missed ${i + 1}`);
        for (const t of missed) {
          await send(bob, t);
          await shown(bob, t);
        }
        // Typed while offline: shown as waiting, sent once connected.
        await send(alice, "queued while offline");
        await alice.locator("#messages .msg.pending").filter({ hasText: "queued while offline" }).waitFor();

        proxy.point(srv.port);
        await alice.locator(`#conn[data-last="${outcome}"][data-state="connected"]`).waitFor({ state: "attached", timeout: 30000 });
        await alice.locator(`#banner[data-state="${outcome}"]`).waitFor();
        await shown(bob, "queued while offline");
        await shown(alice, "queued while offline");
        const want = ["before the cut", ...missed, "queued while offline"];
        await alice.waitForFunction((n) => document.querySelectorAll("#messages .msg:not(.pending)").length >= n, want.length);
        assert.deepEqual(await texts(alice), want, "every message once, in order");
        assert.deepEqual(await texts(bob), want);
        assertClean(alice, bob);
      } finally {
        await closePages(alice, bob);
        await proxy.close();
        await stopChatd(srv);
      }
    });
  }
});

async function clusterNodes(url) {
  try {
    const text = await (await fetch(url + "/metrics", { signal: AbortSignal.timeout(2000) })).text();
    const line = text.split("\n").find((l) => l.startsWith("chatd_cluster_nodes "));
    return line ? Number(line.split(" ")[1]) : NaN;
  } catch {
    return NaN;
  }
}

describe("web client on a two-instance cluster", () => {
  let redis;
  let nodes = [];
  let proxies = [];
  before(async () => {
    redis = await startRedis();
    const prefix = uid("webtest");
    for (const id of ["web0", "web1"]) {
      nodes.push(await startChatd({ CHATD_REDIS_URL: redis.url, CHATD_REDIS_PREFIX: prefix, CHATD_INSTANCE_ID: id }));
    }
    const deadline = Date.now() + WAIT_MS;
    for (const n of nodes) {
      while ((await clusterNodes(n.url)) !== 2) {
        if (Date.now() > deadline) assert.fail(`${n.url} does not see 2 cluster nodes`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    proxies = [await tcpProxy(nodes[0].port), await tcpProxy(nodes[1].port)];
    await assertPageServed(proxies[0].url);
  });
  after(async () => {
    for (const p of proxies) await p.close();
    for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) await stopChatd(n);
    await redis?.stop();
  });

  test("two people on two instances chat; a killed instance's page reconnects and shows every message", async (t) => {
    const room = uid("cluster");
    const [pa, pb] = proxies;
    const alice = await joinAs(pa.url, "Alice", room);
    const bob = await joinAs(pb.url, "Bob", room);
    try {
      // Across instances: presence, typing and messages both ways.
      await person(alice, "bob");
      await person(bob, "alice");
      await send(alice, "from instance zero");
      await shown(bob, "from instance zero");
      await send(bob, "from instance one");
      await shown(alice, "from instance one");
      await bob.locator("#message-input").pressSequentially("typing across", { delay: 20 });
      await alice.locator("#typing").filter({ hasText: "Bob is typing" }).waitFor();
      await bob.locator("#message-input").fill("");

      // Kill alice's instance. Her proxy refuses connections until it is
      // pointed at the surviving instance, so the page must show that it is
      // reconnecting, and bob's messages meanwhile reach her only after.
      pa.point(null);
      nodes[0].child.kill("SIGKILL");
      await nodes[0].exited;
      await alice.locator('#conn[data-state="reconnecting"]').waitFor({ state: "attached" });
      await alice.locator('#banner[data-state="reconnecting"]').waitFor();
      const missed = ["while you were away 1", "while you were away 2", "while you were away 3"];
      for (const t of missed) {
        await send(bob, t);
        await shown(bob, t);
      }

      pa.point(nodes[1].port);
      await alice.locator('#conn[data-state="connected"]').waitFor({ state: "attached", timeout: 30000 });
      for (const t of missed) await shown(alice, t);
      const want = ["from instance zero", "from instance one", ...missed];
      await alice.waitForFunction((n) => document.querySelectorAll("#messages .msg:not(.pending)").length >= n, want.length);
      assert.deepEqual(await texts(alice), want, "every message once, in order, after the reconnect");
      // The page said how the reconnect went: recovered, or caught up from history.
      const outcome = await alice.locator("#conn").getAttribute("data-last");
      assert.ok(["recovered", "caught-up"].includes(outcome), `connection outcome ${outcome}`);
      t.diagnostic(`reconnect outcome on the surviving instance: ${outcome}`);

      // And the conversation goes on.
      await send(alice, "back again");
      await shown(bob, "back again");
      await person(alice, "bob");
      assertClean(alice, bob);
    } finally {
      await closePages(alice, bob);
    }
  });
});
