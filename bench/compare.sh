#!/usr/bin/env bash
# compare.sh runs chatbench against chatd and against Node socket.io servers,
# alternately, and prints the ratios chatd/node. There are two Node servers:
# bench/node-min (label node-min), the smallest socket.io 4 server that does
# join and message, and bench/node-peer (label node), which has chatd's
# behaviour (users, presence, recovery, a Redis adapter for clusters).
#
#   bench/compare.sh                      every scenario below, once each
#   bench/compare.sh idle10k capacity     only these
#   ROUNDS=3 bench/compare.sh capacity    chatd, node-min, chatd, node-min, ...
#   PEERS="node-min node" bench/compare.sh idle10k   against both Node servers
#
# Scenarios: idle (5,000 connections in rooms of 20), idle<N>k such as
# idle10k or idle50k (N thousand connections in rooms of 10: idle10k is
# 1,000 rooms; each process needs N thousand open files, and more than
# 20,000 connections are spread over several loopback source addresses),
# fanout<rate> such as fanout500 or fanout1500 (100 rooms x 20 members,
# 100-byte messages, that many messages/s for 20 s; half the Node server's
# capacity tests the p99 goal), capacity (highest rate with p99 <= 100 ms
# and nothing lost, 100 rooms x 20 members, every member publishing
# 100-byte messages), cluster2 and cluster3 (fanout500 over 2 or 3
# instances and a private Redis), cluster2at<rate> such as cluster2at625
# (cluster2 at that many messages/s: half of Node's capacity2 tests the p99
# goal), capacity2 (capacity over 2 instances and Redis), storm
# (connects/s). Cluster scenarios run against bench/node-peer
# only: bench/node-min has no adapter.
#
# Redis Cluster scenarios, not in the default list (name them):
# rcluster2 (cluster2's fan-out over 2 instances on a private Redis Cluster
# of 3 masters without replicas) and rcapacity2 (capacity2 on that
# cluster). Each runs against chatd (CHATD_REDIS_ADDRS = the masters) and
# bench/node-peer twice: label node-classic, @socket.io/redis-adapter's
# createAdapter on a node-redis cluster client (PUBLISH/SUBSCRIBE), and
# label node-sharded, its createShardedAdapter with subscriptionMode
# "dynamic" (SPUBLISH/SSUBSCRIBE, a channel per room). The three masters
# run on CPU 1, as the single Redis does, beside chatbench.
#
#   bench/compare.sh rcluster2 rcapacity2
#   DURATION=2s MAX_STEPS=2 QUIET_WAIT=0 bench/compare.sh rcluster2 rcapacity2   a smoke run
#
# Every scenario over Redis (cluster2, cluster3, capacity2 and the Redis
# Cluster ones) also reports, in its result line's "redis" object, what the
# Redis servers spent per message of the step (for capacity, of its best
# step): CPU (used_cpu_sys + used_cpu_user, summed over the masters),
# commands (INFO commandstats) and network bytes (total_net_input_bytes +
# total_net_output_bytes), read before the step's first send and after its
# last delivery, warm-up messages included.
#
# The servers run pinned to CPU 0 (taskset -c 0), chatbench and Redis to
# CPU 1; both Go processes with GOMAXPROCS=1. Before each run the script
# waits (at most QUIET_WAIT seconds) until the machine is quiet: less than
# QUIET_BUSY percent of all CPU busy over 2 s. Results (one JSON line per
# run) and progress logs go to bench/results/<UTC time>/ (OUT=dir to
# choose). Every run targets 127.0.0.1 only and ends by itself.
#
# Settings (environment): ROUNDS (1), PEERS (node-min: the Node servers of
# single-instance scenarios, node-min and/or node), OUT, QUIET_BUSY (15), QUIET_WAIT (120),
# DURATION (the measured time of every fan-out run and capacity step, such
# as 3s, instead of the scenario's own), MAX_STEPS (capacity's most steps,
# default chatbench's 10),
# PPROF=1 (serve chatd's /debug/pprof/ and save a 20 s CPU profile and a heap
# profile of chatd during the fan-out scenarios), CHATD_HISTORY_SIZE (1000,
# chatd's default), CHATD_RECOVERY_MAX_DISCONNECTION (2m, chatd's default; 0s
# turns connection state recovery off, as the Node peer has it in cluster
# runs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-1}
read -r -a peers <<<"${PEERS:-node-min}"
for p in "${peers[@]}"; do
  case $p in
    node-min | node) ;;
    *)
      echo "compare.sh: PEERS names node-min and/or node, not $p" >&2
      exit 2
      ;;
  esac
done
quiet_busy=${QUIET_BUSY:-15}
quiet_wait=${QUIET_WAIT:-120}
out=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  scenarios=(idle idle10k fanout500 fanout750 fanout1000 capacity cluster2 cluster3 capacity2 storm)
fi
max_conns=0
for s in "${scenarios[@]}"; do
  case $s in
    idle | capacity | cluster2 | cluster3 | capacity2 | rcluster2 | rcapacity2 | storm) ;;
    idle*k)
      if ! [[ $s =~ ^idle[1-9][0-9]*k$ ]]; then
        echo "compare.sh: idle scenarios are idle<thousands of connections>k, such as idle10k, not $s" >&2
        exit 2
      fi
      n=${s#idle}
      n=$((${n%k} * 1000))
      [ "$n" -gt "$max_conns" ] && max_conns=$n
      ;;
    fanout* | cluster2at*)
      if ! [[ $s =~ ^(fanout|cluster2at)[1-9][0-9]*$ ]]; then
        echo "compare.sh: fan-out scenarios are fanout<messages per second> or cluster2at<messages per second>, such as fanout750, not $s" >&2
        exit 2
      fi
      ;;
    *)
      echo "compare.sh: unknown scenario $s (idle idle<N>k fanout<rate> capacity cluster2 cluster2at<rate> cluster3 capacity2 rcluster2 rcapacity2 storm)" >&2
      exit 2
      ;;
  esac
done
if [ "$(nproc)" -lt 2 ]; then
  echo "compare.sh: needs 2 CPUs (server on CPU 0, generator on CPU 1)" >&2
  exit 2
fi

mkdir -p "$out"
results=$out/results.jsonl
bin=$out/bin
mkdir -p "$bin"

# Every connection is a file descriptor on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"
if [ "$max_conns" -gt 0 ] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_conns + 1000)) ]; then
  echo "compare.sh: $max_conns connections need at least $((max_conns + 1000)) open files per process; the limit here is $(ulimit -n) (raise the hard limit, ulimit -Hn, as root)" >&2
  exit 2
fi

echo "building chatd and chatbench into $bin"
(cd "$repo" && go build -o "$bin/chatd" ./cmd/chatd && go build -o "$bin/chatbench" ./cmd/chatbench)
for d in node-peer node-min; do
  if [ ! -d "$here/$d/node_modules/socket.io" ]; then
    echo "installing the packages of bench/$d"
    npm --prefix "$here/$d" ci --no-audit --no-fund --loglevel=error
  fi
done

pids=()
redis_pid=""
rc_pids=()
rc_addrs=""
redis_kind=single
cleanup() {
  stop_servers
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  local p
  for p in "${rc_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${rc_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# machine_busy prints the percentage of all CPU time that was busy over 2 s.
machine_busy() {
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 2
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $((total > 0 ? 100 * (total - idle) / total : 0))
}

wait_quiet() {
  local deadline=$((SECONDS + quiet_wait)) busy
  while :; do
    busy=$(machine_busy)
    if [ "$busy" -lt "$quiet_busy" ]; then
      echo "machine quiet: ${busy}% busy; $(uptime | sed 's/.*load/load/')"
      return
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "WARNING: machine still ${busy}% busy after ${quiet_wait}s; measuring anyway: $(uptime | sed 's/.*load/load/')"
      return
    fi
    echo "machine busy (${busy}%); waiting"
    sleep 3
  done
}

start_redis() {
  [ -n "$redis_pid" ] && return
  redis_port=$(free_port)
  taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --logfile "$out/redis.log" &
  redis_pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "compare.sh: redis-server did not start" >&2
  exit 1
}

# start_redis_cluster starts a Redis Cluster of 3 masters (no replicas) on
# CPU 1 once, and sets rc_addrs to their host:port, comma-separated.
start_redis_cluster() {
  [ -n "$rc_addrs" ] && return
  local i port bus dir addrs=()
  for i in 1 2 3; do
    port=$(free_port)
    bus=$(free_port)
    dir=$out/redis-cluster-$port
    mkdir -p "$dir"
    taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" --cluster-port "$bus" --dir "$dir" \
      --save "" --appendonly no --logfile "$dir/redis.log" &
    rc_pids+=($!)
    addrs+=("127.0.0.1:$port")
    for _ in $(seq 50); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$out/redis-cluster-create.log" 2>&1 ||
    { echo "compare.sh: redis-cli --cluster create failed (see $out/redis-cluster-create.log)" >&2; exit 1; }
  local a
  for a in "${addrs[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "${a##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
      sleep 0.1
    done
    redis-cli -p "${a##*:}" cluster info | grep -q '^cluster_state:ok' ||
      { echo "compare.sh: the Redis Cluster is not ok on $a" >&2; exit 1; }
  done
  rc_addrs=$(IFS=,; echo "${addrs[*]}")
  echo "Redis Cluster: $rc_addrs (pids ${rc_pids[*]}, CPU 1)"
}

# wait_healthy URL waits until URL/healthz answers 200.
wait_healthy() {
  for _ in $(seq 100); do
    curl -sf -o /dev/null "$1/healthz" && return
    sleep 0.1
  done
  echo "compare.sh: $1 did not become healthy" >&2
  exit 1
}

# start_servers IMPL N RUN starts N instances of chatd or node (node-classic
# and node-sharded: node over a Redis Cluster with that adapter), on the
# single Redis or, with redis_kind=cluster, on the Redis Cluster; sets
# targets, pid_list and redis_nodes (the Redis servers chatbench measures).
start_servers() {
  local impl=$1 n=$2 run=$3 i port
  targets=""
  pid_list=""
  redis_nodes=""
  local redis_url="" redis_addrs="" adapter=classic
  [ "$impl" = node-sharded ] && adapter=sharded
  if [ "$n" -gt 1 ] && [ "$redis_kind" = cluster ]; then
    start_redis_cluster
    redis_addrs=$rc_addrs
    redis_nodes=$rc_addrs
  elif [ "$n" -gt 1 ]; then
    start_redis
    redis_url="redis://127.0.0.1:$redis_port"
    redis_nodes="127.0.0.1:$redis_port"
  fi
  for i in $(seq "$n"); do
    port=$(free_port)
    if [ "$impl" = chatd ]; then
      env GOMAXPROCS=1 \
        CHATD_LISTEN="127.0.0.1:$port" \
        CHATD_LOG_LEVEL=warn \
        CHATD_LIMITS_EVENTS_PER_SECOND=100000 \
        CHATD_LIMITS_EVENT_BURST=100000 \
        CHATD_LIMITS_CONNECTIONS_PER_ADDRESS=0 \
        CHATD_LIMITS_HANDSHAKES_PER_SECOND=0 \
        CHATD_LIMITS_SOCKETS_PER_USER=0 \
        CHATD_LIMITS_CONNECTIONS=0 \
        CHATD_SHUTDOWN_DRAIN=0s \
        CHATD_SHUTDOWN_TIMEOUT=10s \
        CHATD_HISTORY_SIZE="${CHATD_HISTORY_SIZE:-1000}" \
        CHATD_RECOVERY_MAX_DISCONNECTION="${CHATD_RECOVERY_MAX_DISCONNECTION:-2m}" \
        CHATD_REDIS_URL="$redis_url" \
        CHATD_REDIS_ADDRS="$redis_addrs" \
        CHATD_REDIS_PREFIX="bench-$run" \
        CHATD_INSTANCE_ID="bench-$i" \
        CHATD_DEBUG_PPROF="$([ "${PPROF:-0}" = 1 ] && echo true || echo false)" \
        taskset -c 0 "$bin/chatd" >"$out/$run-chatd-$i.log" 2>&1 &
    elif [ "$impl" = node-min ]; then
      (cd "$here/node-min" && exec env \
        PEER_LISTEN="127.0.0.1:$port" \
        taskset -c 0 node server.mjs >"$out/$run-node-min-$i.log" 2>&1) &
    else
      (cd "$here/node-peer" && exec env \
        PEER_LISTEN="127.0.0.1:$port" \
        PEER_REDIS_URL="$redis_url" \
        PEER_REDIS_ADDRS="$redis_addrs" \
        PEER_ADAPTER="$adapter" \
        PEER_REDIS_PREFIX="bench-$run" \
        taskset -c 0 node server.mjs >"$out/$run-$impl-$i.log" 2>&1) &
    fi
    pids+=($!)
    pid_list+="${pid_list:+,}$!"
    targets+="${targets:+,}http://127.0.0.1:$port"
    wait_healthy "http://127.0.0.1:$port"
  done
}

stop_servers() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# bench IMPL N NAME ARGS... runs one chatbench scenario against N fresh
# instances of IMPL and appends its result line.
bench() {
  local impl=$1 n=$2 name=$3
  shift 3
  local run
  run="$name-$impl-$(date +%H%M%S)"
  stop_servers
  wait_quiet
  start_servers "$impl" "$n" "$run"
  echo "== $run: chatbench $* (servers $pid_list on CPU 0)"
  local profiler=""
  local extra=()
  # bench/node-min sends no session event: its CONNECT answer is enough.
  [ "$impl" = node-min ] && extra=(-session=false)
  [ -n "$redis_nodes" ] && extra+=(-redis-nodes "$redis_nodes")
  local before_lines
  # The braces make 2>/dev/null cover the redirection: the first run has no results file yet.
  before_lines=$({ wc -l <"$results"; } 2>/dev/null || echo 0)
  if [ "${PPROF:-0}" = 1 ] && [ "$impl" = chatd ] && [[ $name == fanout* ]]; then
    (sleep 8 && curl -sf -o "$out/$run.cpu.pprof" "${targets%%,*}/debug/pprof/profile?seconds=10" &&
      curl -sf -o "$out/$run.heap.pprof" "${targets%%,*}/debug/pprof/heap") &
    profiler=$!
  fi
  GOMAXPROCS=1 taskset -c 1 "$bin/chatbench" "$@" "${extra[@]}" -target "$targets" -pid "$pid_list" -label "$impl" \
    >>"$results" 2> >(tee "$out/$run.progress.log" | grep -E 'done|capacity:|storm:|idle:|step [0-9]+:' >&2) ||
    { echo "FAILED: $run: chatbench failed, a failed run, not noise (see $out/$run.progress.log)"; failed_runs=$((failed_runs + 1)); }
  summarize "$run" "$before_lines"
  [ -n "$profiler" ] && { wait "$profiler" || echo "WARNING: profile of $run failed"; }
  [ "$impl" = chatd ] && record_closes "$run"
  stop_servers
}

# record_closes RUN writes, for each chatd instance of the run, its count of
# the connections it closed, by reason (ping timeout, slow client, ...), to
# RUN.closes.log: a run that lost a connection then shows why. The counters
# cover the instance's whole life, and every run starts fresh instances, so
# one read after the run is enough. (Reading them every second during the
# run, as an earlier version did, started a handful of processes each time
# on the two CPUs the measurement uses, and those stalls alone raised
# chatd's p99 at 500 msg/s from about 6.5 to about 16 ms; Node's runs had
# no such reader.)
record_closes() {
  local t
  for t in ${targets//,/ }; do
    curl -sf "$t/metrics" 2>/dev/null | grep -E '^chatd_(server_closes_total|slow_clients_disconnected_total)' |
      grep -v ' 0$' | sed "s|^|$t |" || true
  done >"$out/$1.closes.log"
}

# summarize RUN N prints one line about the result lines after the first N
# of the results: deliveries/s, p99, lost and duplicated, and with Redis
# what it spent per message (capacity: of the best passing step).
summarize() {
  python3 - "$results" "$2" "$1" <<'PY' || true
import json, sys
path, skip, run = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path) as f:
    lines = [l for l in f.read().splitlines() if l.startswith("{")][skip:]
for line in lines:
    m = json.loads(line)
    step = m
    if m.get("scenario") == "capacity":
        passing = [s for s in m.get("steps", []) if s.get("pass")]
        step = max(passing, key=lambda s: s["rate"]) if passing else {}
    if "deliveries_per_s" not in step:
        continue
    out = "%s: %.0f deliveries/s, p99 %.2f ms, lost %d, duplicated %d" % (
        run, step["deliveries_per_s"], step["latency"].get("p99_ms", 0), step["lost"], step["duplicates"])
    r = step.get("redis")
    if r:
        out += "; Redis (%d) per message: %.1f us CPU, %.2f commands, %.0f bytes" % (
            r["nodes"], r["cpu_us_per_message"], r["commands_per_message"], r["bytes_per_message"])
    print(out)
PY
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "results: $results"
failed_runs=0
duration() { echo "${DURATION:-$1}"; }
steps=()
[ -n "${MAX_STEPS:-}" ] && steps=(-max-steps "$MAX_STEPS")
for s in "${scenarios[@]}"; do
  impls=(chatd "${peers[@]}")
  redis_kind=single
  case $s in
    cluster* | capacity2) impls=(chatd node) ;;
    rcluster2 | rcapacity2)
      impls=(chatd node-classic node-sharded)
      redis_kind=cluster
      ;;
  esac
  for _ in $(seq "$rounds"); do
    for impl in "${impls[@]}"; do
      case $s in
        idle) bench "$impl" 1 idle idle -conns 5000 -members 20 ;;
        idle*k)
          n=${s#idle}
          n=$((${n%k} * 1000))
          bench "$impl" 1 "$s" idle -conns "$n" -members 10 -sources $((n / 20000 + 1))
          ;;
        fanout*) bench "$impl" 1 "$s" fanout -rooms 100 -members 20 -rate "${s#fanout}" -duration "$(duration 20s)" -text-bytes 100 ;;
        capacity) bench "$impl" 1 capacity capacity -rooms 100 -members 20 -rate 500 -duration "$(duration 10s)" -text-bytes 100 "${steps[@]}" ;;
        cluster2) bench "$impl" 2 cluster2 fanout -rooms 100 -members 20 -rate 500 -duration "$(duration 20s)" ;;
        cluster2at*) bench "$impl" 2 "$s" fanout -rooms 100 -members 20 -rate "${s#cluster2at}" -duration "$(duration 20s)" ;;
        cluster3) bench "$impl" 3 cluster3 fanout -rooms 100 -members 20 -rate 500 -duration "$(duration 20s)" ;;
        capacity2) bench "$impl" 2 capacity2 capacity -rooms 100 -members 20 -rate 250 -duration "$(duration 10s)" "${steps[@]}" ;;
        rcluster2) bench "$impl" 2 rcluster2 fanout -rooms 100 -members 20 -rate 500 -duration "$(duration 20s)" ;;
        rcapacity2) bench "$impl" 2 rcapacity2 capacity -rooms 100 -members 20 -rate 250 -duration "$(duration 10s)" "${steps[@]}" ;;
        storm) bench "$impl" 1 storm storm -rate 1000 -factor 1.25 -step 2s ;;
      esac
    done
  done
done

compare_status=0
: >"$out/ratios.md"
for label in node-min node node-classic node-sharded; do
  grep -q "\"label\":\"$label\"" "$results" 2>/dev/null || continue
  echo
  echo "ratios (chatd/$label; medians over rounds):" | tee -a "$out/ratios.md"
  "$bin/chatbench" compare -b "$label" "$results" | tee -a "$out/ratios.md" || compare_status=$?
done
if [ "$failed_runs" -gt 0 ] || [ "$compare_status" -ne 0 ]; then
  echo "FAILED: $failed_runs chatbench runs failed (a connection the server closed or that could not be made fails a run); the ratios above leave them out" >&2
  exit 1
fi
