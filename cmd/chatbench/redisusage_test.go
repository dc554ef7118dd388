package main

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/internal/testkit"
)

// TestRedisInfoCounters: the counters come from INFO cpu, stats and
// commandstats, the meter's own INFO calls left out, and a step's usage is
// their difference per message.
func TestRedisInfoCounters(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n" +
		"# Stats\r\ntotal_net_input_bytes:1000\r\ntotal_net_output_bytes:3000\r\ntotal_net_repl_input_bytes:77\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=40,usec=100,usec_per_call=2.5,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_publish:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=99,usec=1,usec_per_call=0.01,rejected_calls=0,failed_calls=0\r\n"
	c, err := parseRedisInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if want := (redisCounters{cpuSeconds: 3.75, commands: 50, netBytes: 4000, ok: true}); c != want {
		t.Errorf("parseRedisInfo = %+v, want %+v", c, want)
	}
	if _, err := parseRedisInfo("# Stats\r\ntotal_net_input_bytes:1\r\n"); err == nil {
		t.Error("INFO without the CPU counters: want an error")
	}
	if _, err := parseRedisInfo(info + "cmdstat_get:usec=3\r\n"); err == nil {
		t.Error("a command line without calls: want an error")
	}

	// Three servers; 1,000 messages cost them 0.5 s of CPU, 4,000
	// commands and 2 MB.
	m := &redisMeter{clients: make([]*goredis.Client, 3)}
	before := redisCounters{cpuSeconds: 10, commands: 100, netBytes: 1000, ok: true}
	after := redisCounters{cpuSeconds: 10.5, commands: 4100, netBytes: 2_001_000, ok: true}
	u := m.usage(before, after, 1000)
	want := redisUsage{Nodes: 3, CPUSeconds: 0.5, Commands: 4000, NetBytes: 2_000_000,
		CPUPerMessageUS: 500, CommandsPerMessage: 4, BytesPerMessage: 2000}
	if u == nil || *u != want {
		t.Errorf("usage = %+v, want %+v", u, want)
	}
	if m.usage(redisCounters{}, after, 1000) != nil || m.usage(before, after, 0) != nil {
		t.Error("a failed read or no message: want no usage")
	}
	var none *redisMeter
	if none.read(t.Context()).ok || none.usage(before, after, 1) != nil {
		t.Error("no meter: want nothing read")
	}
}

// TestFanoutReportsRedisPerMessage: with -redis-nodes, a fan-out over a
// chatd on Redis reports what Redis spent per message.
func TestFanoutReportsRedisPerMessage(t *testing.T) {
	redis := testkit.StartRedisServer(t)
	srv := startChatd(t, "CHATD_REDIS_URL="+redis.URL())
	m, err := runJSON(t, "fanout", "-target", srv.url, "-pid", strconv.Itoa(srv.pid),
		"-rooms", "4", "-members", "3", "-rate", "20", "-duration", "1s", "-warmup", "0s", "-settle", "1s",
		"-redis-nodes", redis.Addr())
	if err != nil {
		t.Fatalf("fanout: %v", err)
	}
	if got := num(t, m, "redis_nodes"); got != 1 {
		t.Errorf("redis_nodes = %v, want 1", got)
	}
	if got := num(t, m, "redis.nodes"); got != 1 {
		t.Errorf("redis.nodes = %v, want 1", got)
	}
	// chatd stores and publishes every message: at least two commands.
	if got := num(t, m, "redis.commands_per_message"); got < 2 {
		t.Errorf("redis.commands_per_message = %v, want at least 2", got)
	}
	if got := num(t, m, "redis.bytes_per_message"); got < 100 {
		t.Errorf("redis.bytes_per_message = %v, want at least the message's own bytes", got)
	}
	if got := num(t, m, "redis.cpu_us_per_message"); got < 0 {
		t.Errorf("redis.cpu_us_per_message = %v, want at least 0", got)
	}
}

// TestCompareKeepsRedisTopologiesApart: runs over one Redis and over a
// Redis Cluster's masters are compared each with their own kind, and the
// Redis measures are in the table.
func TestCompareKeepsRedisTopologiesApart(t *testing.T) {
	in := `{"scenario":"fanout","label":"chatd","targets":2,"rooms":100,"members":20,"rate":500,"redis_nodes":1,"redis":{"commands_per_message":3}}
{"scenario":"fanout","label":"node","targets":2,"rooms":100,"members":20,"rate":500,"redis_nodes":1,"redis":{"commands_per_message":1}}
{"scenario":"fanout","label":"chatd","targets":2,"rooms":100,"members":20,"rate":500,"redis_nodes":3,"redis":{"commands_per_message":6}}
{"scenario":"fanout","label":"node-sharded","targets":2,"rooms":100,"members":20,"rate":500,"redis_nodes":3,"redis":{"commands_per_message":2}}
`
	var out bytes.Buffer
	if err := runCompare([]string{"-b", "node-sharded"}, strings.NewReader(in), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "| fanout 100x20 @500/s x2 inst on 3 redis | redis.commands_per_message | 6 | 2 | 3.00 | lower |"; !strings.Contains(out.String(), want) {
		t.Errorf("missing %q in\n%s", want, out.String())
	}
	// The single-Redis chatd run stands alone: no node-sharded run there.
	if want := "| fanout 100x20 @500/s x2 inst on 1 redis | redis.commands_per_message | 3 | - | - | lower |"; !strings.Contains(out.String(), want) {
		t.Errorf("missing %q in\n%s", want, out.String())
	}
}
