// A test backend for chatd's hooks: a Node http server that verifies each
// request's signature (X-Chatd-Timestamp, X-Chatd-Signature) as a real
// backend would, records the requests, and answers with what the test's
// handler returns.

import http from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

/** TOLERANCE_S is how old a signed request may be, in seconds, before the backend calls it a replay. */
const TOLERANCE_S = 300;

/**
 * verifySignature checks the signature headers of a request against its raw
 * body; it is the snippet the documentation shows backends.
 */
export function verifySignature(secret, headers, rawBody) {
  const ts = headers["x-chatd-timestamp"];
  const sigs = headers["x-chatd-signature"];
  if (!ts || !sigs) return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > TOLERANCE_S) return false;
  const want = createHmac("sha256", secret).update(`${ts}.`).update(rawBody).digest();
  return sigs.split(",").some((s) => {
    const [v, hex] = s.trim().split("=");
    const got = Buffer.from(hex ?? "", "hex");
    return v === "v1" && got.length === want.length && timingSafeEqual(got, want);
  });
}

/**
 * startBackend serves on a free loopback port. handle(body, req) answers a
 * verified request: it returns (or resolves to) { status?, json?, text?,
 * delayMs?, headers?, destroy? }; destroy drops the connection without an
 * answer. A request whose signature does not verify gets 401 and is counted
 * in badSignatures. The result has url, requests (every verified body, in
 * order), badSignatures, handle (replaceable) and close().
 */
export async function startBackend(secret, handle) {
  const b = { requests: [], badSignatures: 0, handle };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks);
      if (!verifySignature(secret, req.headers, raw)) {
        b.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      const body = JSON.parse(raw.toString("utf8"));
      b.requests.push(body);
      let a;
      try {
        a = (await b.handle(body, req)) ?? {};
      } catch (err) {
        res.writeHead(500).end(String(err));
        return;
      }
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      if (a.destroy) {
        req.socket.destroy();
        return;
      }
      const text = a.text ?? JSON.stringify(a.json ?? {});
      res.writeHead(a.status ?? 200, { "Content-Type": "application/json", ...a.headers });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  b.url = `http://127.0.0.1:${server.address().port}`;
  b.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return b;
}

/** lastRequest returns the newest recorded request whose hook is hook and that passes filter. */
export function lastRequest(b, hook, filter = () => true) {
  return b.requests.findLast((r) => (r.hook ?? "") === hook && filter(r));
}
