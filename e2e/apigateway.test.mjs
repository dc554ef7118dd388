// API Gateway compatibility mode end to end. First the example in
// examples/apigateway: the Lambda handler behind its thin HTTP wrapper,
// nginx terminating TLS in front of chatd with a certificate made here, and
// socket.io-client asking for its connection id, which the handler answers
// through PostToConnectionCommand. Then the events themselves against a
// backend started here: their JSON, refusals, failures, $default's answer
// and $disconnect.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, symlinkSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import https from "node:https";
import path from "node:path";

import { REPO_ROOT, startChatd, stopChatd, connect, connectError, req, ok, nextEvent, freePort, uid, waitFor, metric, close, cleanup } from "./lib/chatd.mjs";
import { startBackend } from "./lib/backend.mjs";
import { io } from "socket.io-client";

const SECRET = "gateway-secret-0123456789abcdef012345";
const AWS = { id: "AKIDCHATDEXAMPLE", secret: "gateway-aws-secret-0123456789abcdef" };
const EXAMPLE = path.join(REPO_ROOT, "examples", "apigateway");

/** httpsGet resolves to the status of GET url, trusting ca. */
function httpsGet(url, ca) {
  return new Promise((resolve) => {
    const r = https.get(url, { ca, timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    r.on("error", () => resolve(0));
    r.on("timeout", () => r.destroy());
  });
}

/** child runs a process whose output is kept; kill() ends it. */
function child(cmd, args, env) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  p.stdout.on("data", (c) => (out += c));
  p.stderr.on("data", (c) => (out += c));
  const exited = new Promise((r) => p.on("exit", r));
  return { output: () => out, kill: () => (p.exitCode === null && p.kill("SIGTERM"), exited) };
}

describe("API Gateway mode: the example handler behind nginx with TLS", { timeout: 30_000 }, () => {
  let dir, srv, wrapper, nginx, cert, base;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "chatd-apigw-"));
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    cert = readFileSync(path.join(dir, "cert.pem"));
    // The example's files, with the e2e suite's node_modules (the AWS SDK).
    const app = path.join(dir, "app");
    mkdirSync(app);
    for (const f of ["handler.mjs", "server.mjs"]) copyFileSync(path.join(EXAMPLE, f), path.join(app, f));
    symlinkSync(path.join(REPO_ROOT, "e2e", "node_modules"), path.join(app, "node_modules"));

    const [tlsPort, appPort] = [await freePort(), await freePort()];
    base = `https://localhost:${tlsPort}`;
    srv = await startChatd({
      CHATD_HTTP_TRUSTED_PROXIES: "127.0.0.1",
      CHATD_API_AWS_ACCESS_KEY_ID: AWS.id,
      CHATD_API_AWS_SECRET_ACCESS_KEY: AWS.secret,
      CHATD_HOOKS_SECRET: SECRET,
      CHATD_HOOKS_APIGATEWAY_URL: `http://127.0.0.1:${appPort}/`,
      CHATD_HOOKS_APIGATEWAY_DOMAIN_NAME: `localhost:${tlsPort}`,
      CHATD_HOOKS_APIGATEWAY_STAGE: "production",
      CHATD_HOOKS_APIGATEWAY_TIMEOUT: "5s",
    });
    const conf = readFileSync(path.join(EXAMPLE, "nginx.conf"), "utf8")
      .replaceAll("@DIR@", dir).replaceAll("@TLS_PORT@", String(tlsPort)).replaceAll("@CHATD_PORT@", String(srv.port));
    writeFileSync(path.join(dir, "nginx.conf"), conf);
    nginx = child("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], {});
    // The environment a Lambda runtime sets: region and credentials (and
    // here the test certificate authority, for https://domainName).
    wrapper = child(process.execPath, [path.join(app, "server.mjs")], {
      PORT: String(appPort),
      CHATD_HOOKS_SECRET: SECRET,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: AWS.id,
      AWS_SECRET_ACCESS_KEY: AWS.secret,
      NODE_EXTRA_CA_CERTS: path.join(dir, "cert.pem"),
    });
    await waitFor("nginx to serve chatd over TLS", async () => (await httpsGet(`${base}/healthz`, cert)) === 200, 10_000);
    await waitFor("the handler's wrapper to listen", () => wrapper.output().includes("handler listening"), 10_000);
  });
  after(async () => {
    await cleanup(
      () => stopChatd(srv),
      () => wrapper?.kill(),
      () => nginx?.kill(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
  });

  it("GET_CONNECTION_ID is answered through PostToConnectionCommand, back to the socket", async () => {
    const { socket, session } = await connect(base, { auth: { userId: uid("alice") }, ca: cert });
    await waitFor("$connect at the handler", () => wrapper.output().includes(`$connect ${session.socketId}`), 5000);
    const pushed = nextEvent(socket, "push");
    const ack = await req(socket, "action", { action: "GET_CONNECTION_ID" });
    assert.deepEqual(ack, { ok: true, statusCode: 200 });
    assert.deepEqual(await pushed, { connectionId: session.socketId });
    // chatd's own events stay chatd's.
    await ok(socket, "join", { room: uid("room") });
    await close(socket);
    await waitFor("$disconnect at the handler", () => wrapper.output().includes(`$disconnect ${session.socketId}`), 5000);
    assert.equal(await metric(srv.url, 'chatd_hook_calls_total{hook="apigateway_default",outcome="allow"}'), 1);
    assert.doesNotMatch(wrapper.output(), /Error/);
  });

  it("long-polling through nginx reaches the handler too", async () => {
    const { socket, session } = await connect(base, { auth: { userId: uid("bob") }, ca: cert, transports: ["polling"] });
    const pushed = nextEvent(socket, "push");
    await req(socket, "action", JSON.stringify({ action: "GET_CONNECTION_ID" }));
    assert.deepEqual(await pushed, { connectionId: session.socketId });
  });
});

describe("API Gateway mode: the events", { timeout: 30_000 }, () => {
  let backend, srv;
  const events = (route, id) =>
    backend.requests.filter((e) => e.requestContext.routeKey === route && (id === undefined || e.requestContext.connectionId === id));
  before(async () => {
    backend = await startBackend(SECRET, async (ev) => {
      const rc = ev.requestContext;
      if (rc.routeKey === "$connect") {
        const q = ev.queryStringParameters ?? {};
        if (q.reject) return { json: { statusCode: 403, body: "Forbidden" } };
        if (q.garbage) return { text: "<html>" };
        if (q.nostatus) return { json: { body: "ok" } };
        if (q.slow) return { delayMs: 1000, json: { statusCode: 200 } };
        return { json: { statusCode: 200 } };
      }
      if (rc.routeKey === "$default") {
        if (rc.eventName === "teapot") return { json: { statusCode: 418 } };
        if (rc.eventName === "broken") return { json: { statusCode: 502 } };
        if (rc.eventName === "slow") return { delayMs: 1000, json: { statusCode: 200 } };
        return { json: { statusCode: 200, body: `echo:${ev.body}` } };
      }
      return { json: { statusCode: 200 } };
    });
    srv = await startChatd({
      CHATD_HOOKS_SECRET: SECRET,
      CHATD_HOOKS_TIMEOUT: "400ms",
      CHATD_HOOKS_APIGATEWAY_URL: backend.url,
      CHATD_HOOKS_APIGATEWAY_DOMAIN_NAME: "chat.example.test",
      CHATD_HOOKS_APIGATEWAY_STAGE: "prod",
    });
  });
  after(async () => {
    await cleanup(() => stopChatd(srv), () => backend?.close());
  });

  it("$connect carries the Lambda proxy event's fields", async () => {
    const { session } = await connect(srv.url, {
      auth: { userId: uid("carol") },
      query: { room: "lobby" },
      extraHeaders: { "User-Agent": "e2e-agent", Cookie: "sid=1" },
    });
    const [ev] = events("$connect", session.socketId);
    const rc = ev.requestContext;
    assert.equal(rc.eventType, "CONNECT");
    assert.equal(rc.domainName, "chat.example.test");
    assert.equal(rc.stage, "prod");
    assert.equal(typeof rc.connectedAt, "number");
    assert.ok(rc.requestId && rc.extendedRequestId && rc.requestTimeEpoch);
    assert.deepEqual(rc.identity, { sourceIp: "127.0.0.1", userAgent: "e2e-agent" });
    assert.deepEqual(ev.queryStringParameters, { room: "lobby" });
    assert.equal(ev.headers["User-Agent"], "e2e-agent");
    assert.equal(ev.headers.Cookie, undefined, "Cookie is not in hooks.headers");
    assert.equal(ev.isBase64Encoded, false);
    assert.equal(backend.badSignatures, 0);
  });

  it("a non-2xx statusCode refuses with connect_error; a failed handler with unavailable", async () => {
    const refused = await connectError(srv.url, { auth: { userId: uid("dan") }, query: { reject: "1" } });
    assert.equal(refused.message, "unauthorized");
    assert.equal(refused.data.code, "unauthorized");
    assert.match(refused.data.message, /statusCode 403/);
    for (const q of ["garbage", "nostatus", "slow"]) {
      const err = await connectError(srv.url, { auth: { userId: uid("dan") }, query: { [q]: "1" } });
      assert.equal(err.message, "unavailable", q);
      assert.equal(err.data.code, "unavailable", q);
    }
    assert.equal(await metric(srv.url, 'chatd_hook_calls_total{hook="apigateway_connect",outcome="refuse"}'), 1);
    assert.equal(await metric(srv.url, 'chatd_hook_failures_total{hook="apigateway_connect",reason="bad_response"}'), 2);
    assert.equal(await metric(srv.url, 'chatd_hook_failures_total{hook="apigateway_connect",reason="timeout"}'), 1);
    // No $disconnect for a connection that was never let in.
    assert.equal(events("$disconnect").length, 0);
  });

  it("$default: every other event, its first argument as body; the answer acknowledges", async () => {
    const { socket, session } = await connect(srv.url, { auth: { userId: uid("erin") } });
    assert.deepEqual(await req(socket, "sendmessage", { text: "hi" }), { ok: true, statusCode: 200, body: 'echo:{"text":"hi"}' });
    assert.deepEqual(await req(socket, "raw", "plain text"), { ok: true, statusCode: 200, body: "echo:plain text" });
    const [ev] = events("$default", session.socketId).filter((e) => e.requestContext.eventName === "sendmessage");
    assert.equal(ev.requestContext.eventType, "MESSAGE");
    assert.ok(ev.requestContext.messageId);
    assert.equal(ev.body, '{"text":"hi"}');
    assert.equal((await req(socket, "teapot", {})).error?.code, "bad_request");
    assert.equal((await req(socket, "broken", {})).error?.code, "unavailable");
    assert.equal((await req(socket, "slow", {})).error?.code, "unavailable");
    const before = events("$default").length;
    await ok(socket, "rooms", {});
    assert.equal((await req(socket, "join", {})).error?.code, "bad_request");
    assert.equal(events("$default").length, before, "chatd's own events never reach $default");
  });

  it("$disconnect follows when the socket is gone, with its status code", async () => {
    const { socket, session } = await connect(srv.url, { auth: { userId: uid("fay") } });
    await close(socket);
    const ev = await waitFor("$disconnect", () => events("$disconnect", session.socketId)[0], 5000);
    assert.equal(ev.requestContext.eventType, "DISCONNECT");
    assert.equal(ev.requestContext.disconnectStatusCode, 1000);
    assert.equal(ev.requestContext.disconnectReason, "client namespace disconnect");
  });

  it("a session that recovery restores after a dropped transport is announced with $connect again", async () => {
    const socket = io(srv.url, { auth: { userId: uid("gus") }, transports: ["websocket"], forceNew: true });
    try {
      const first = await new Promise((resolve) => socket.once("session", resolve));
      socket.io.engine.close(); // the transport drops; the client reconnects by itself
      const again = await new Promise((resolve) => socket.once("session", resolve));
      assert.equal(again.recovered, true);
      assert.equal(again.socketId, first.socketId);
      const [gone] = await waitFor("$disconnect of the dropped transport", () => events("$disconnect", first.socketId), 5000);
      assert.equal(gone.requestContext.disconnectStatusCode, 1001);
      assert.equal(gone.requestContext.disconnectReason, "transport close");
      await waitFor("a second $connect", () => events("$connect", first.socketId).length === 2, 5000);
    } finally {
      socket.close();
    }
  });
});
