// Private Redis topologies for the end-to-end tests: a Redis Cluster (of
// masters, or of masters with replicas) and a master watched by a Sentinel,
// each on free loopback ports with its files in a temporary folder, started
// with Debian's redis-server and redis-cli; and the faults a cluster goes
// through in production: hash slots moved with their keys, a coordinated
// failover, a crashed master.

import { spawn, execFile } from "node:child_process";
import net from "node:net";
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
  // Whatever a test does, a server it started does not outlive it.
  process.on("exit", () => child.kill("SIGKILL"));
  await until(`redis-server on ${port} to answer PING`, async () => {
    if (gone) throw new Error(`redis-server on ${port} exited`);
    return (await cli(port, "ping")).trim() === "PONG";
  }, 10000);
  return {
    port,
    addr: `127.0.0.1:${port}`,
    dead: false,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
    /** kill ends the server at once (SIGKILL), as a crash would. */
    async kill() {
      this.dead = true;
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * startRedisCluster starts `masters` cluster-enabled redis-servers (and
 * `replicas` replicas of each), joins them with `redis-cli --cluster
 * create` and resolves once every node reports cluster_state:ok and knows
 * every other. nodeTimeoutMs is cluster-node-timeout: how long a master may
 * be unreachable before its replica takes over (Redis's default is 15 s).
 *
 * The result has addrs (host:port of the masters, for CHATD_REDIS_ADDRS),
 * nodes (every node: port, addr, id, kill(), stop()), stop() and the
 * helpers of topology(): roles, moveSlots, failover, killMaster.
 */
export async function startRedisCluster(masters = 3, { replicas = 0, nodeTimeoutMs = 15000 } = {}) {
  const dir = tempDir("chatd-rediscluster-");
  const nodes = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort();
    const bus = await freePort();
    nodes.push(await spawnRedis(port, [
      "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`),
      "--cluster-port", String(bus), "--port", String(port), "--bind", "127.0.0.1",
      "--cluster-node-timeout", String(nodeTimeoutMs),
      "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "",
    ]));
  }
  await run("redis-cli", ["--cluster", "create", ...nodes.map((n) => n.addr), "--cluster-replicas", String(replicas), "--cluster-yes"], { timeout: 30000 });
  for (const n of nodes) {
    await until(`cluster_state:ok on ${n.addr}`, async () => {
      const info = await cli(n.port, "cluster", "info");
      return info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${nodes.length}`);
    });
  }
  // A replica reports ok before its first sync with its master is done:
  // wait for every link, so that a failover finds replicas in step.
  if (replicas > 0) {
    for (const n of nodes) {
      await until(`${n.addr} to be a master or a synced replica`, async () => {
        const info = await cli(n.port, "info", "replication");
        return info.includes("role:master") || info.includes("master_link_status:up");
      });
    }
  }
  for (const n of nodes) n.id = (await cli(n.port, "cluster", "myid")).trim();
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const roles = await clusterRoles(nodes);
  return {
    addrs: roles.masters.map((m) => byPort.get(m.port).addr),
    nodes,
    ...clusterControl(nodes),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

// ------------------------------------------------- changing a live cluster

/**
 * resp opens a connection to a Redis on a loopback port that sends commands
 * (arrays of strings, pipelined) and resolves each to its reply: strings,
 * numbers, null, arrays, or an Error for an error reply. redis-cli costs a
 * process per command, too slow for moving hundreds of slots.
 */
export function resp(port) {
  const sock = net.connect(port, "127.0.0.1");
  sock.setNoDelay(true);
  const pending = [];
  let buf = Buffer.alloc(0);
  let failed = null;
  const fail = (err) => {
    failed = err;
    for (const p of pending.splice(0)) p.reject(err);
  };
  sock.on("error", fail);
  sock.on("close", () => fail(new Error(`connection to redis on ${port} closed`)));
  // parse reads one reply at offset i of buf; undefined when it is not all there yet.
  const parse = (i) => {
    const eol = buf.indexOf("\r\n", i);
    if (eol < 0) return undefined;
    const line = buf.toString("utf8", i + 1, eol);
    const next = eol + 2;
    switch (String.fromCharCode(buf[i])) {
      case "+": return [line, next];
      case "-": return [new Error(line), next];
      case ":": return [Number(line), next];
      case "$": {
        const n = Number(line);
        if (n < 0) return [null, next];
        if (buf.length < next + n + 2) return undefined;
        return [buf.toString("utf8", next, next + n), next + n + 2];
      }
      case "*": {
        const n = Number(line);
        if (n < 0) return [null, next];
        const items = [];
        let at = next;
        for (let k = 0; k < n; k++) {
          const r = parse(at);
          if (!r) return undefined;
          items.push(r[0]);
          at = r[1];
        }
        return [items, at];
      }
      default:
        throw new Error(`unexpected reply from redis on ${port}: ${line}`);
    }
  };
  sock.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const r = parse(0);
      if (!r) break;
      buf = buf.subarray(r[1]);
      pending.shift()?.resolve(r[0]);
    }
  });
  const ready = new Promise((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  return {
    /** call sends one command and resolves to its reply (an error reply rejects). */
    async call(...args) {
      await ready;
      if (failed) throw failed;
      const parts = [`*${args.length}\r\n`];
      for (const a of args) {
        const s = String(a);
        parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
      }
      const reply = await new Promise((resolve, reject) => {
        pending.push({ resolve, reject });
        sock.write(parts.join(""));
      });
      if (reply instanceof Error) throw new Error(`${args.slice(0, 3).join(" ")} on ${port}: ${reply.message}`);
      return reply;
    },
    close() {
      sock.destroy();
    },
  };
}

/**
 * clusterRoles reads CLUSTER NODES from the first live node of nodes and
 * resolves to {masters, replicas}: each {id, port, masterId, slots} with
 * slots the list of hash slots a master serves. Failed nodes are left out.
 */
export async function clusterRoles(nodes) {
  let text;
  for (const n of nodes) {
    try {
      text = await cli(n.port, "cluster", "nodes");
      if (text.trim()) break;
    } catch {
      // down: ask the next
    }
  }
  if (!text) throw new Error("no cluster node answers CLUSTER NODES");
  const masters = [];
  const replicas = [];
  for (const line of text.trim().split("\n")) {
    const [id, addr, flags, masterId, , , , , ...ranges] = line.trim().split(" ");
    if (flags.includes("fail") || flags.includes("noaddr")) continue;
    const port = Number(addr.split("@")[0].split(":")[1]);
    const slots = [];
    for (const r of ranges) {
      if (r.startsWith("[")) continue; // a slot being imported or migrated
      const [a, b = a] = r.split("-").map(Number);
      for (let s = a; s <= b; s++) slots.push(s);
    }
    const node = { id, port, masterId: masterId === "-" ? null : masterId, slots };
    (flags.includes("master") ? masters : replicas).push(node);
  }
  masters.sort((x, y) => (x.slots[0] ?? 1e9) - (y.slots[0] ?? 1e9));
  return { masters, replicas };
}

/**
 * clusterControl builds the helpers that change a running cluster of nodes
 * (each {port, id, kill()}): slot moves with keys in them, and failovers.
 */
function clusterControl(nodes) {
  const live = () => nodes.filter((n) => !n.dead);
  return {
    /** roles resolves to clusterRoles of the nodes still running. */
    roles: () => clusterRoles(live()),

    /**
     * slotsHolding resolves to the slots served by the master on port whose
     * keys contain one of the given strings (such as room names), whatever
     * the key layout.
     */
    async slotsHolding(port, needles) {
      const { masters } = await clusterRoles(live());
      const m = masters.find((x) => x.port === port);
      const c = resp(port);
      try {
        const counts = await Promise.all(m.slots.map((s) => c.call("cluster", "countkeysinslot", s)));
        const found = [];
        await Promise.all(m.slots.map(async (s, i) => {
          if (counts[i] === 0) return;
          const keys = await c.call("cluster", "getkeysinslot", s, counts[i]);
          if (keys.some((k) => needles.some((x) => k.includes(x)))) found.push(s);
        }));
        return found.sort((a, b) => a - b);
      } finally {
        c.close();
      }
    },

    /**
     * moveSlots moves hash slots, keys and all, from the master on port
     * `from` to the master on port `to` while clients keep using them:
     * every slot IMPORTING on the target and MIGRATING on the source, then
     * for each slot MIGRATE of its keys in batches (CLUSTER GETKEYSINSLOT)
     * until none is left, then SETSLOT NODE on the target, the source and
     * every other master. The commands of each step go out pipelined, for
     * all the slots at once. Resolves to the number of keys moved.
     */
    async moveSlots(from, to, slots) {
      const { masters } = await clusterRoles(live());
      const src = masters.find((m) => m.port === from);
      const dst = masters.find((m) => m.port === to);
      if (!src || !dst) throw new Error(`moveSlots: ${from} or ${to} is not a master`);
      const conns = new Map(masters.map((m) => [m.port, resp(m.port)]));
      const s = conns.get(from);
      const d = conns.get(to);
      const each = (c, ...args) => Promise.all(slots.map((slot) => c.call("cluster", "setslot", slot, ...args)));
      let moved = 0;
      try {
        await each(d, "importing", src.id);
        await each(s, "migrating", dst.id);
        await Promise.all(slots.map(async (slot) => {
          for (;;) {
            const keys = await s.call("cluster", "getkeysinslot", slot, 100);
            if (keys.length === 0) return;
            await s.call("migrate", "127.0.0.1", to, "", 0, 5000, "replace", "keys", ...keys);
            moved += keys.length;
          }
        }));
        // The target first, so that no node sends clients back to a
        // source that no longer has the slot.
        await each(d, "node", dst.id);
        await each(s, "node", dst.id);
        for (const [port, c] of conns) {
          if (port !== from && port !== to) await each(c, "node", dst.id);
        }
      } finally {
        for (const c of conns.values()) c.close();
      }
      return moved;
    },

    /**
     * failover has the replica of the master on port take over with CLUSTER
     * FAILOVER (coordinated: the replica catches up first, nothing is
     * lost) and resolves to the new master's port once every live node
     * agrees on it.
     */
    async failover(port) {
      const { masters, replicas } = await clusterRoles(live());
      const m = masters.find((x) => x.port === port);
      const r = replicas.find((x) => x.masterId === m.id);
      if (!r) throw new Error(`failover: the master on ${port} has no replica`);
      await cli(r.port, "cluster", "failover");
      await this.waitMaster(r.port, m.slots[0]);
      return r.port;
    },

    /**
     * killMaster SIGKILLs the master on port and resolves to its replica's
     * port once that replica has been elected and every live node sees the
     * cluster whole again (cluster_state:ok).
     */
    async killMaster(port) {
      const { masters, replicas } = await clusterRoles(live());
      const m = masters.find((x) => x.port === port);
      const r = replicas.find((x) => x.masterId === m.id);
      if (!r) throw new Error(`killMaster: the master on ${port} has no replica`);
      await nodes.find((n) => n.port === port).kill();
      await this.waitMaster(r.port, m.slots[0]);
      return r.port;
    },

    /** waitMaster resolves once every live node names the node on port as the master of slot and reports cluster_state:ok. */
    async waitMaster(port, slot, timeoutMs = 15000) {
      const id = nodes.find((n) => n.port === port).id;
      for (const n of live()) {
        await until(`${n.addr} to see ${port} as the master of slot ${slot}`, async () => {
          const info = await cli(n.port, "cluster", "info");
          if (!info.includes("cluster_state:ok")) return false;
          const { masters } = await clusterRoles([n]);
          return masters.some((x) => x.id === id && x.slots.includes(slot));
        }, timeoutMs);
      }
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
