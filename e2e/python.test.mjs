// A second client implementation guards interop: python-socketio (Debian's
// python3-socketio) drives the contract's main path over long-polling and
// over WebSocket (e2e/python/client_test.py), with connection state
// recovery on (every server event then carries a trailing offset) and
// cors.origins set (python-socketio sends its own origin on WebSocket).
// PYTHON3 names the interpreter; the default is Debian's /usr/bin/python3.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { REPO_ROOT, startChatd, stopChatd } from "./lib/chatd.mjs";

const PYTHON = process.env.PYTHON3 || "/usr/bin/python3";
const SCRIPT = path.join(REPO_ROOT, "e2e", "python", "client_test.py");

function runPython(...args) {
  return new Promise((resolve) => {
    execFile(PYTHON, [SCRIPT, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

describe("python-socketio", { timeout: 120_000 }, () => {
  let srv;
  before(async () => {
    srv = await startChatd({ CHATD_RECOVERY_MAX_DISCONNECTION: "2m", CHATD_CORS_ORIGINS: "https://other.example" });
  });
  after(() => stopChatd(srv));

  for (const transport of ["polling", "websocket"]) {
    it(`holds the contract over ${transport}`, async () => {
      const { code, out } = await runPython(srv.url, transport);
      assert.equal(code, 0, `${PYTHON} ${SCRIPT} ${srv.url} ${transport} failed:\n${out}`);
      assert.match(out, /the contract holds/);
    });
  }
});
