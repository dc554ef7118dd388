package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The end-to-end tests start the real chatd binary (CHATD_BIN, or built
// from ./cmd/chatd once per test run) on 127.0.0.1 with a free port, run a
// tiny scenario against it and check what a benchmark user relies on: every
// message delivered exactly once, and numbers in the result line.

var (
	buildOnce sync.Once
	chatdBin  string
	buildErr  error
)

// chatdBinary returns the path of a chatd binary.
func chatdBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHATD_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chatbench-test")
		if err != nil {
			buildErr = err
			return
		}
		chatdBin = filepath.Join(dir, "chatd")
		out, err := exec.Command("go", "build", "-o", chatdBin, "github.com/chatd/chatd/cmd/chatd").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building chatd: %v", buildErr)
	}
	return chatdBin
}

// server is a server process under test.
type server struct {
	url string
	pid int
}

// startChatd starts chatd on 127.0.0.1:0 with env added and returns its URL
// once it listens (it logs the address it bound).
func startChatd(t *testing.T, env ...string) server {
	t.Helper()
	cmd := exec.Command(chatdBinary(t))
	cmd.Env = append(os.Environ(),
		"CHATD_LISTEN=127.0.0.1:0",
		"CHATD_LOG_LEVEL=info",
		"CHATD_SHUTDOWN_DRAIN=0s",
		"CHATD_LIMITS_EVENTS_PER_SECOND=1000",
		"CHATD_LIMITS_EVENT_BURST=2000",
		// Every benchmark client is one address, and one user may be many.
		"CHATD_LIMITS_CONNECTIONS_PER_ADDRESS=0",
		"CHATD_LIMITS_HANDSHAKES_PER_SECOND=0",
		"CHATD_LIMITS_SOCKETS_PER_USER=0",
		"CHATD_LIMITS_CONNECTIONS=0",
	)
	cmd.Env = append(cmd.Env, env...)
	return startProcess(t, cmd, func(line string) (string, bool) {
		if !strings.Contains(line, "chatd serving") {
			return "", false
		}
		for _, f := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(f, "addr="); ok {
				return "http://" + a, true
			}
		}
		return "", false
	})
}

// startProcess starts cmd and waits until found recognizes the line of its
// output that names its URL.
func startProcess(t *testing.T, cmd *exec.Cmd, found func(string) (string, bool)) server {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	var output []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u, ok := found(sc.Text()); ok {
				urls <- u
			}
			output = append(output, sc.Text())
		}
		close(urls)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = pw.Close()
		<-readDone
		if t.Failed() {
			t.Logf("server output:\n%s", strings.Join(output, "\n"))
		}
	})
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatal("the server exited before it listened")
		}
		return server{url: u, pid: cmd.Process.Pid}
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not say where it listens within 15 s")
	}
	return server{}
}

// runJSON runs chatbench with args and decodes its result line.
func runJSON(t *testing.T, args ...string) (map[string]any, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, &stdout, &stderr)
	t.Logf("progress:\n%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("want one result line, got %q (err %v)", stdout.String(), err)
	}
	var m map[string]any
	if jerr := json.Unmarshal([]byte(lines[0]), &m); jerr != nil {
		t.Fatalf("result line is not JSON: %v: %s", jerr, lines[0])
	}
	return m, err
}

func num(t *testing.T, m map[string]any, path string) float64 {
	t.Helper()
	v, ok := lookup(m, path)
	if !ok {
		t.Fatalf("result has no number at %s: %v", path, m)
	}
	return v
}

// checkExactlyOnce asserts (with extra chatbench flags) that a fan-out of 4 rooms x 3 members at 20
// messages/s for 1 s delivered each of its 20 messages to the 2 other
// members of its room exactly once.
func checkExactlyOnce(t *testing.T, srv server, extra ...string) {
	t.Helper()
	args := []string{"fanout", "-target", srv.url, "-pid", strconv.Itoa(srv.pid),
		"-rooms", "4", "-members", "3", "-rate", "20", "-duration", "1s", "-warmup", "0s", "-settle", "1s", "-label", "test"}
	m, err := runJSON(t, append(args, extra...)...)
	if err != nil {
		t.Fatalf("fanout: %v", err)
	}
	for path, want := range map[string]float64{
		"sent": 20, "acked": 20, "ack_failed": 0, "unacked": 0,
		"expected": 40, "delivered": 40, "lost": 0, "duplicates": 0, "unexpected": 0,
		"dropped_connections": 0, "latency.n": 40, "connections": 12,
	} {
		if got := num(t, m, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if num(t, m, "server.rss_mb") <= 0 {
		t.Errorf("server.rss_mb = %v, want the server's RSS", num(t, m, "server.rss_mb"))
	}
	if m["label"] != "test" || m["scenario"] != "fanout" {
		t.Errorf("label, scenario = %v, %v", m["label"], m["scenario"])
	}
}

func TestFanoutAgainstChatdDeliversEveryMessageOnce(t *testing.T) {
	checkExactlyOnce(t, startChatd(t))
}

// TestFanoutAgainstNodePeer checks that the Node peer behaves as chatd
// does for chatbench. It needs node and bench/node-peer's npm packages.
func TestFanoutAgainstNodePeer(t *testing.T) {
	peer := filepath.Join("..", "..", "bench", "node-peer")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(peer, "node_modules", "socket.io")); err != nil {
		t.Skip("bench/node-peer has no node_modules; run npm ci there")
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = peer
	cmd.Env = append(os.Environ(), "PEER_LISTEN=127.0.0.1:0")
	srv := startProcess(t, cmd, func(line string) (string, bool) {
		a, ok := strings.CutPrefix(line, "node-peer serving on ")
		if !ok {
			return "", false
		}
		a, _, _ = strings.Cut(a, " ")
		return "http://" + a, true
	})
	checkExactlyOnce(t, srv)
}

// startNodeMin starts bench/node-min, the minimal socket.io server, or
// skips without node or its npm packages.
func startNodeMin(t *testing.T) server {
	t.Helper()
	dir := filepath.Join("..", "..", "bench", "node-min")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io")); err != nil {
		t.Skip("bench/node-min has no node_modules; run npm ci there")
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PEER_LISTEN=127.0.0.1:0")
	return startProcess(t, cmd, func(line string) (string, bool) {
		a, ok := strings.CutPrefix(line, "node-min serving on ")
		if !ok {
			return "", false
		}
		a, _, _ = strings.Cut(a, " ")
		return "http://" + a, true
	})
}

// TestFanoutAgainstMinimalNodePeer checks that bench/node-min, which sends
// no session event, delivers every message once to chatbench with
// -session=false.
func TestFanoutAgainstMinimalNodePeer(t *testing.T) {
	checkExactlyOnce(t, startNodeMin(t), "-session=false", "-text-bytes", "100")
}

// TestIdleAgainstMinimalNodePeerFromTwoSources holds connections from two
// loopback source addresses, as compare.sh's larger idle scenarios do.
func TestIdleAgainstMinimalNodePeerFromTwoSources(t *testing.T) {
	srv := startNodeMin(t)
	m, err := runJSON(t, "idle", "-target", srv.url, "-pid", strconv.Itoa(srv.pid), "-session=false",
		"-sources", "2", "-conns", "40", "-members", "10", "-settle", "0s", "-metrics", "")
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	if got := num(t, m, "connections"); got != 40 {
		t.Errorf("connections = %v, want 40", got)
	}
	if got := num(t, m, "dropped_connections"); got != 0 {
		t.Errorf("dropped_connections = %v", got)
	}
	if num(t, m, "rss_after_mb") <= 0 {
		t.Errorf("rss_after_mb = %v", num(t, m, "rss_after_mb"))
	}
}

// TestDialerSpreadsSourceAddresses checks that -sources 3 takes the source
// address of each new connection from 127.0.0.1 to 127.0.0.3 in turn.
func TestDialerSpreadsSourceAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := newDialer(3).NetDialContext
	seen := map[string]int{}
	for range 6 {
		c, err := dial(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		host, _, _ := net.SplitHostPort(s.RemoteAddr().String())
		seen[host]++
		_ = s.Close()
		_ = c.Close()
	}
	want := map[string]int{"127.0.0.1": 2, "127.0.0.2": 2, "127.0.0.3": 2}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("source addresses %v, want %v", seen, want)
	}
}

// TestChatdWithoutSessionWait checks that -session=false also works
// against chatd: its session event is then one of the ignored events.
func TestChatdWithoutSessionWait(t *testing.T) {
	checkExactlyOnce(t, startChatd(t), "-session=false")
}

func TestIdleReportsServerCostPerConnection(t *testing.T) {
	srv := startChatd(t)
	m, err := runJSON(t, "idle", "-target", srv.url, "-pid", strconv.Itoa(srv.pid),
		"-conns", "40", "-members", "10", "-settle", "0s")
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	if got := num(t, m, "connections"); got != 40 {
		t.Errorf("connections = %v, want 40", got)
	}
	if got := num(t, m, "goroutines_after") - num(t, m, "goroutines_before"); got < 40 {
		t.Errorf("goroutines grew by %v for 40 connections; chatd runs at least one per connection", got)
	}
	if num(t, m, "rss_after_mb") <= 0 {
		t.Errorf("rss_after_mb = %v", num(t, m, "rss_after_mb"))
	}
	if got := num(t, m, "dropped_connections"); got != 0 {
		t.Errorf("dropped_connections = %v", got)
	}
}

func TestSoakAccountsForEveryUserAndSamples(t *testing.T) {
	srv := startChatd(t)
	m, err := runJSON(t, "soak", "-target", srv.url, "-pid", strconv.Itoa(srv.pid), "-redis", "",
		"-rooms", "3", "-rate", "40", "-duration", "2s", "-warmup", "0s", "-report", "500ms", "-drain", "5s")
	if err != nil {
		t.Fatalf("soak: %v", err)
	}
	cycles := num(t, m, "cycles")
	if cycles < 40 || num(t, m, "cycle_errors") != 0 {
		t.Errorf("cycles = %v, cycle_errors = %v (%v); want about 80 users, none failed", cycles, m["cycle_errors"], m["first_error"])
	}
	if num(t, m, "delivered") != cycles || num(t, m, "lost") != 0 || num(t, m, "duplicates") != 0 {
		t.Errorf("delivered %v of %v, lost %v, duplicated %v", m["delivered"], cycles, m["lost"], m["duplicates"])
	}
	samples, _ := m["samples"].([]any)
	if len(samples) < 4 {
		t.Fatalf("want a sample every 500ms of 2s, got %v", m["samples"])
	}
	if s := samples[len(samples)-1].(map[string]any); s["rss_mb"] == nil || s["goroutines"] == nil || s["heap_mb"] == nil {
		t.Errorf("last sample lacks RSS, heap or goroutines: %v", s)
	}
	if _, ok := m["flat"].(bool); !ok {
		t.Errorf("flat = %v, want a verdict", m["flat"])
	}
}

func TestSoakFlatVerdict(t *testing.T) {
	at := func(sec float64, heap float64) soakSample { return soakSample{Seconds: sec, HeapMB: ptr(heap)} }
	flat := []soakSample{at(0, 1), at(10, 20), at(20, 20.5), at(30, 20.2), at(40, 21), at(50, 20.4), at(60, 20.8)}
	if g, ok := soakFlat(flat, 10*time.Second); !ok || len(g) != 1 {
		t.Errorf("soakFlat(flat) = %v, %v; want flat (the warm-up's rise left out)", g, ok)
	}
	grew := []soakSample{at(10, 20), at(20, 22), at(30, 24), at(40, 26), at(50, 28), at(60, 30)}
	if g, ok := soakFlat(grew, 10*time.Second); ok || len(g) != 1 || g[0].Flat {
		t.Errorf("soakFlat(grew) = %v, %v; want growth reported", g, ok)
	}
}

func TestStormConnectsEveryConnection(t *testing.T) {
	srv := startChatd(t)
	m, err := runJSON(t, "storm", "-target", srv.url, "-rate", "20", "-step", "500ms",
		"-max-steps", "2", "-cooldown", "0s", "-metrics", "")
	if err != nil {
		t.Fatalf("storm: %v", err)
	}
	steps, _ := m["steps"].([]any)
	if len(steps) != 2 {
		t.Fatalf("want 2 steps, got %v", m["steps"])
	}
	for i, s := range steps {
		st := s.(map[string]any)
		if st["attempted"] != st["connected"] || st["failed"] != 0.0 {
			t.Errorf("step %d: attempted %v, connected %v, failed %v (%v)", i, st["attempted"], st["connected"], st["failed"], st["first_error"])
		}
	}
	if num(t, m, "best_rate") != 30 {
		t.Errorf("best_rate = %v, want 30 (20, then 20 x 1.5)", num(t, m, "best_rate"))
	}
}

func TestRefusedConnectionIsAClearError(t *testing.T) {
	srv := startChatd(t, "CHATD_AUTH_MODE=jwt", "CHATD_AUTH_JWT_SECRET=0123456789abcdef0123456789abcdef")
	m, err := runJSON(t, "fanout", "-target", srv.url, "-rooms", "1", "-members", "2", "-duration", "1s", "-settle", "0s", "-metrics", "")
	if err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("err = %v, want a connect_error naming unauthorized", err)
	}
	if e, _ := m["error"].(string); !strings.Contains(e, "unauthorized") {
		t.Errorf("result error = %q, want it to name unauthorized", e)
	}
}

func TestFlagsRefuseBadSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "-target", "http://10.0.0.1:3000"}, "only loopback"},
		{[]string{"fanout", "-target", "http://example.com:3000"}, "only loopback"},
		{[]string{"fanout", "-target", "http://127.0.0.1"}, "name the port"},
		{[]string{"fanout", "-target", "ftp://127.0.0.1:21"}, "scheme"},
		{[]string{"fanout", "-rate", "0"}, "-rate"},
		{[]string{"fanout", "-members", "1"}, "-members"},
		{[]string{"fanout", "-text-bytes", "10"}, "-text-bytes"},
		{[]string{"fanout", "-settle", "-1s"}, "-settle"},
		{[]string{"idle", "-conns", "0"}, "-conns"},
		{[]string{"idle", "-sources", "0"}, "-sources"},
		{[]string{"idle", "-sources", "255"}, "-sources"},
		{[]string{"storm", "-factor", "1"}, "-factor"},
		{[]string{"capacity", "-rate", "100", "-max-rate", "50"}, "-max-rate"},
		{[]string{"idle", "-pid", "abc"}, "not a process id"},
		{[]string{"soak", "-warmup", "5m", "-duration", "1m"}, "-warmup"},
		{[]string{"soak", "-redis", "10.0.0.1:6379"}, "only loopback"},
		{[]string{"soak", "-redis", "nohost"}, "host:port"},
		{[]string{"idle", "extra"}, "unexpected argument"},
		{[]string{"nope"}, "unknown scenario"},
		{nil, "name a scenario"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
			t.Errorf("%v: err = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := int64(1); i <= 1000; i++ {
		h.record(i * int64(time.Millisecond))
	}
	for _, tc := range []struct {
		q    float64
		want float64 // ms
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}} {
		got := float64(h.quantile(tc.q)) / 1e6
		if got < tc.want*0.98 || got > tc.want*1.02 {
			t.Errorf("quantile(%v) = %.2fms, want %.0fms within 2%%", tc.q, got, tc.want)
		}
	}
	if s := h.summary(); s.N != 1000 || s.Max != 1000 {
		t.Errorf("summary = %+v", s)
	}
	var empty histogram
	if s := empty.summary(); s.Valid || s.P99 != 0 {
		t.Errorf("empty summary = %+v", s)
	}
	// Every bucket's upper bound maps back to the bucket.
	for i := 0; i < histBuckets-1; i++ {
		if got := histIndex(histUpper(i)); got != i {
			t.Fatalf("histIndex(histUpper(%d)) = %d", i, got)
		}
	}
}

func TestProcParsers(t *testing.T) {
	rss, err := parseVmRSS([]byte("Name:\tchatd\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\n"))
	if err != nil || rss != 12345 {
		t.Errorf("parseVmRSS = %v, %v", rss, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tchatd\n")); err == nil {
		t.Error("parseVmRSS without VmRSS: want an error")
	}
	cpu, err := parseStatCPU([]byte("42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 1000000 500"))
	if err != nil || cpu != 300 {
		t.Errorf("parseStatCPU = %v, %v, want 300", cpu, err)
	}
	busy, err := parseMachineBusy([]byte("cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || busy != 161 {
		t.Errorf("parseMachineBusy = %v, %v, want 161", busy, err)
	}
	g, h, err := parseGoroutines(strings.NewReader("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 1234\ngo_memstats_heap_inuse_bytes 5.5e+06\n"))
	if err != nil || g != 1234 || h != 5500000 {
		t.Errorf("parseGoroutines = %v, %v, %v; want 1234, 5500000", g, h, err)
	}
	if _, h, err := parseGoroutines(strings.NewReader("go_goroutines 7\n")); err != nil || h != -1 {
		t.Errorf("without the heap sample: heap %v, %v; want -1", h, err)
	}
}

func TestCompareReportsRatios(t *testing.T) {
	in := `{"scenario":"fanout","label":"chatd","targets":1,"rooms":100,"members":20,"rate":500,"deliveries_per_s":9000,"latency":{"p99_ms":4}}
{"scenario":"fanout","label":"node","targets":1,"rooms":100,"members":20,"rate":500,"deliveries_per_s":9500,"latency":{"p99_ms":2}}
{"scenario":"idle","label":"chatd","targets":1,"connections":5000,"rss_per_conn_kb":30}
{"scenario":"idle","label":"chatd","targets":1,"connections":5000,"rss_per_conn_kb":20}
{"scenario":"idle","label":"node","targets":1,"connections":5000,"rss_per_conn_kb":10}
{"scenario":"fanout","label":"node","targets":1,"rooms":100,"members":20,"rate":500,"deliveries_per_s":9500,"latency":{"p99_ms":900},"disturbed":true}
progress lines and the like are skipped
`
	var out bytes.Buffer
	if err := runCompare(nil, strings.NewReader(in), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| fanout 100x20 @500/s x1 inst | latency.p99_ms | 4 | 2 | 2.00 | lower |",
		"| idle 5000 conns x1 inst | rss_per_conn_kb | 25 (median of 2) | 10 | 2.50 | lower |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	if err := runCompare(nil, strings.NewReader("{not json\n"), io.Discard, io.Discard); err == nil {
		t.Error("a broken result line: want an error")
	}
}

// TestCompareFailsOnARunThatLostConnections: a run in which the server
// closed connections, or one that could not connect, is a failed run: it is
// left out of the medians, listed, and compare exits non-zero.
func TestCompareFailsOnARunThatLostConnections(t *testing.T) {
	in := `{"scenario":"fanout","label":"chatd","targets":2,"rooms":100,"members":20,"rate":500,"deliveries_per_s":9000,"latency":{"p99_ms":4}}
{"scenario":"fanout","label":"chatd","targets":2,"rooms":100,"members":20,"rate":500,"deliveries_per_s":1,"latency":{"p99_ms":1},"dropped_connections":2}
{"scenario":"fanout","label":"node","targets":2,"rooms":100,"members":20,"rate":500,"deliveries_per_s":9500,"latency":{"p99_ms":2}}
{"scenario":"fanout","label":"node","targets":2,"rooms":100,"members":20,"rate":500,"error":"connection 7 to http://127.0.0.1:1: refused"}
`
	var out bytes.Buffer
	err := runCompare(nil, strings.NewReader(in), &out, io.Discard)
	if err == nil {
		t.Fatalf("want an error for the failed runs; got\n%s", out.String())
	}
	for _, want := range []string{
		"| fanout 100x20 @500/s x2 inst | latency.p99_ms | 4 | 2 | 2.00 | lower |",
		"- chatd fanout 100x20 @500/s x2 inst: 2 connections dropped",
		"- node fanout 100x20 @500/s x2 inst: connection 7 to http://127.0.0.1:1: refused",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}
