// A private redis-server for the cluster tests: on a free loopback port, its
// data in a temporary folder (append-only file, so that a restart on the
// same port keeps the data, as a production Redis with persistence would).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { freePort } from "./chatd.mjs";

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let buf = "";
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.on("error", () => resolve(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) { s.destroy(); resolve(buf.startsWith("+PONG")); }
    });
  });
}

/**
 * startRedis starts a redis-server and resolves once it answers PING. The
 * result has port, url, stop() (SIGTERM, waits for the exit) and start()
 * (again, on the same port and data folder).
 */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "chatd-redis-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  let child = null;
  let exited = null;
  const r = {
    port,
    dir, // the data folder: emptying it while stopped makes a Redis that forgot everything
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn("redis-server", [
        "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
        "--appendfsync", "always", "--dir", dir, "--logfile", "",
      ], { stdio: "ignore" });
      exited = new Promise((resolve) => child.on("exit", resolve));
      const deadline = Date.now() + 10000;
      while (!(await ping(port))) {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING`);
        await new Promise((res) => setTimeout(res, 25));
      }
    },
    async stop() {
      if (!child) return;
      child.kill("SIGTERM");
      await exited;
      child = null;
    },
  };
  await r.start();
  return r;
}
