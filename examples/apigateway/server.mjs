// A thin HTTP wrapper that runs handler.mjs as a Lambda runtime would: each
// POST from chatd is the event, the handler's return value is the answer.
// It checks chatd's signature first when CHATD_HOOKS_SECRET is set (it
// should be: the same value as chatd's hooks.secret).
//
//   PORT=8080 CHATD_HOOKS_SECRET=... AWS_REGION=us-east-1 \
//   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... node server.mjs

import http from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

import { handler } from "./handler.mjs";

const secret = process.env.CHATD_HOOKS_SECRET;
const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || "127.0.0.1";

// signed reports whether the request carries chatd's signature of body:
// X-Chatd-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body)),
// with X-Chatd-Timestamp at most five minutes from this clock.
function signed(headers, body) {
  const ts = headers["x-chatd-timestamp"];
  const sigs = headers["x-chatd-signature"] || "";
  if (!ts || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const want = createHmac("sha256", secret).update(`${ts}.`).update(body).digest();
  return sigs.split(",").some((s) => {
    const got = Buffer.from(s.trim().replace(/^v1=/, ""), "hex");
    return s.trim().startsWith("v1=") && got.length === want.length && timingSafeEqual(got, want);
  });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const body = Buffer.concat(chunks);
    if (req.method !== "POST") return res.writeHead(405).end();
    if (secret && !signed(req.headers, body)) return res.writeHead(401).end();
    try {
      const result = await handler(JSON.parse(body.toString("utf8")), {});
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(result ?? {}));
    } catch (err) {
      // A handler that throws is what API Gateway answers 500 for.
      console.error(err);
      res.writeHead(500).end();
    }
  });
});

server.listen(port, host, () => console.log(`handler listening on http://${host}:${server.address().port}`));
