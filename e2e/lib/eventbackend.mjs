// A test backend for chatd's events (hooks.events.url): a Node http server
// on a free loopback port that verifies each POST's signature, records the
// events it accepts by id, and can be told to fail, be slow, answer garbage
// or be down.

import http from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";
import { after } from "node:test";
import { freePort } from "./chatd.mjs";

const started = new Set(); // every backend of the test file, stopped when its tests are done

// A backend left listening (a test failed before stopping it) would keep
// the test file's process from exiting.
if (process.env.NODE_TEST_CONTEXT) {
  after(async () => {
    for (const b of started) await b.down();
  });
}

/** signatureProblem returns what is wrong with a signed request, or "". */
export function signatureProblem(secret, headers, body, nowMs = Date.now()) {
  const ts = headers["x-chatd-timestamp"];
  const sig = headers["x-chatd-signature"];
  if (!ts || !sig) return "missing headers";
  if (Math.abs(nowMs / 1000 - Number(ts)) > 300) return `timestamp ${ts} is more than 5 minutes away`;
  const want = Buffer.from("v1=" + createHmac("sha256", secret).update(`${ts}.`).update(body).digest("hex"));
  const ok = sig.split(",").some((s) => {
    const got = Buffer.from(s.trim());
    return got.length === want.length && timingSafeEqual(got, want);
  });
  return ok ? "" : "signature mismatch";
}

/**
 * startEventBackend starts the backend (up unless { down: true }). mode is
 * "ok", "slow" (never answers), "garbage" (answers bytes that are not HTTP)
 * or "fail" (503); failNext makes the next n POSTs answer 503 first.
 */
export async function startEventBackend(secret, { down = false } = {}) {
  const port = await freePort();
  const b = {
    port,
    url: `http://127.0.0.1:${port}/chatd/events`,
    mode: "ok",
    failNext: 0,
    posts: 0,
    problems: [], // signature and shape problems
    deliveries: new Map(), // event id -> times accepted
    events: [], // each accepted event once, in arrival order
    server: null,
    /** byType returns the accepted events of a type. */
    byType(type) {
      return b.events.filter((e) => e.type === type);
    },
    async up() {
      if (b.server) return;
      b.server = http.createServer(handle);
      await new Promise((resolve, reject) => {
        b.server.once("error", reject);
        b.server.listen(port, "127.0.0.1", resolve);
      });
    },
    async down() {
      if (!b.server) return;
      const s = b.server;
      b.server = null;
      const closed = new Promise((resolve) => s.close(resolve));
      s.closeAllConnections();
      await closed;
    },
  };
  function handle(req, res) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      b.posts += 1;
      const problem = signatureProblem(secret, req.headers, body);
      if (problem) b.problems.push(problem);
      if (b.mode === "slow") return; // never answers; chatd times out
      if (b.mode === "garbage") {
        req.socket.end("\x00\x01 this is not HTTP\r\n\r\n");
        return;
      }
      if (b.mode === "fail" || b.failNext > 0) {
        if (b.failNext > 0) b.failNext -= 1;
        res.writeHead(503).end("try later");
        return;
      }
      let batch;
      try {
        batch = JSON.parse(body.toString());
      } catch {
        b.problems.push("body is not JSON");
      }
      if (req.headers["content-type"] !== "application/json" || !Array.isArray(batch?.events)) {
        b.problems.push(`not a batch: ${req.headers["content-type"]} ${body.toString().slice(0, 200)}`);
        res.writeHead(400).end();
        return;
      }
      for (const e of batch.events) {
        const n = b.deliveries.get(e.id) ?? 0;
        b.deliveries.set(e.id, n + 1);
        if (n === 0) b.events.push(e);
      }
      res.writeHead(204).end();
    });
  }
  started.add(b);
  if (!down) await b.up();
  return b;
}
