// Private Redis topologies for the end-to-end tests: a Redis Cluster of
// three masters and a master watched by a Sentinel, each on free loopback
// ports with its files in a temporary folder, started with Debian's
// redis-server and redis-cli.

import { spawn, execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./chatd.mjs";
import { startRedis } from "./redis.mjs";

const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** cli runs redis-cli against a loopback port and resolves to its output. */
async function cli(port, ...args) {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 5000 });
  return stdout;
}

/** until polls fn (errors count as false) until it returns true, failing after timeoutMs. */
async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function tempDir(name) {
  const dir = mkdtempSync(path.join(tmpdir(), name));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** spawnRedis starts redis-server with args and resolves once its port answers PING. */
async function spawnRedis(port, args) {
  const child = spawn("redis-server", args, { stdio: "ignore" });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let gone = false;
  exited.then(() => (gone = true));
  await until(`redis-server on ${port} to answer PING`, async () => {
    if (gone) throw new Error(`redis-server on ${port} exited`);
    return (await cli(port, "ping")).trim() === "PONG";
  }, 10000);
  return {
    port,
    addr: `127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * startRedisCluster starts `masters` cluster-enabled redis-servers, joins
 * them with `redis-cli --cluster create` (no replicas) and resolves once
 * every node reports cluster_state:ok. The result has addrs (host:port of
 * each node, for CHATD_REDIS_ADDRS) and stop().
 */
export async function startRedisCluster(masters = 3) {
  const dir = tempDir("chatd-rediscluster-");
  const nodes = [];
  for (let i = 0; i < masters; i++) {
    const port = await freePort();
    const bus = await freePort();
    nodes.push(await spawnRedis(port, [
      "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`),
      "--cluster-port", String(bus), "--port", String(port), "--bind", "127.0.0.1",
      "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "",
    ]));
  }
  const addrs = nodes.map((n) => n.addr);
  await run("redis-cli", ["--cluster", "create", ...addrs, "--cluster-replicas", "0", "--cluster-yes"], { timeout: 30000 });
  for (const n of nodes) {
    await until(`cluster_state:ok on ${n.addr}`, async () => (await cli(n.port, "cluster", "info")).includes("cluster_state:ok"));
  }
  return {
    addrs,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

/**
 * startRedisSentinel starts a master redis-server and one Sentinel (quorum
 * 1) that monitors it under masterName, and resolves once the Sentinel names
 * the master. The result has addr (the Sentinel's host:port, for
 * CHATD_REDIS_ADDRS), masterName, master (lib/redis.mjs's server) and stop().
 */
export async function startRedisSentinel(masterName = "m") {
  const master = await startRedis();
  const dir = tempDir("chatd-sentinel-");
  const port = await freePort();
  const conf = path.join(dir, "sentinel.conf");
  // The Sentinel rewrites this file, so it lives in a folder of its own.
  writeFileSync(conf, [
    `port ${port}`, "bind 127.0.0.1", `dir ${dir}`,
    `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
    `sentinel down-after-milliseconds ${masterName} 1000`,
    `sentinel failover-timeout ${masterName} 5000`, "",
  ].join("\n"));
  const sentinel = await spawnRedis(port, [conf, "--sentinel"]);
  await until("the Sentinel to name the master", async () => {
    const out = (await cli(port, "sentinel", "get-master-addr-by-name", masterName)).trim().split("\n");
    return out[0] === "127.0.0.1" && out[1] === String(master.port);
  });
  return {
    addr: sentinel.addr,
    masterName,
    master,
    async stop() {
      await sentinel.stop();
      await master.stop();
    },
  };
}
