package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/config"
	"github.com/chatd/chatd/internal/testkit"
)

// waitLimit bounds every wait for something that must happen. It only keeps a
// broken build from hanging the suite; no test asserts how long anything took.
const waitLimit = 15 * time.Second

// ---------------------------------------------------------------- chatd

// syncBuffer is a goroutine-safe log sink, shown when a test fails.
type syncBuffer struct {
	mu  sync.Mutex // guards b
	b   bytes.Buffer
	hit chan struct{} // signalled on every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{hit: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.hit <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is the default configuration on a free loopback port with quiet
// logs and a server API token.
func testConfig(id string) config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Log.Level = "warn"
	cfg.Instance.ID = id
	cfg.API.Token = "run-test-api-token-0123456789abcdef"
	return cfg
}

// startMain wires and runs chatd like main does and closes it when the test
// ends. It returns chatd and its base URL.
func startMain(t *testing.T, cfg config.Config) (*Main, string) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	logs := newSyncBuffer()
	m, err := newMain(context.Background(), cfg, logs)
	if err != nil {
		t.Fatalf("newMain: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		_ = m.Close()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("chatd %s log:\n%s", cfg.Instance.ID, logs)
		}
	})
	return m, "http://" + m.Addr().String()
}

// get fetches base+path and returns the status and body.
func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Timeout: waitLimit}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, string(b)
}

// ---------------------------------------------------------------- metrics

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeResult is one scrape of /metrics.
type scrapeResult struct {
	types   map[string]string // family name -> counter, gauge, histogram, ...
	samples []sample
	text    string
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrape reads base/metrics in the Prometheus text format.
func scrape(t *testing.T, base string) scrapeResult {
	t.Helper()
	status, body := get(t, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", status, body)
	}
	r, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func parseMetrics(body string) (scrapeResult, error) {
	r := scrapeResult{types: map[string]string{}, text: body}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			r.types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return r, fmt.Errorf("/metrics: unparsable line %q", line)
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return r, fmt.Errorf("/metrics: bad value in %q", line)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[3], -1) {
			s.labels[p[1]] = p[2]
		}
		r.samples = append(r.samples, s)
	}
	return r, sc.Err()
}

// sum adds the samples called name whose labels include the given
// name/value pairs; found is false when there is none.
func (r scrapeResult) sum(name string, labels ...string) (total float64, found bool) {
next:
	for _, s := range r.samples {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		total += s.value
		found = true
	}
	return total, found
}

// value is sum, treating a series that is not there (a labelled counter
// never incremented) as 0.
func (r scrapeResult) value(name string, labels ...string) float64 {
	v, _ := r.sum(name, labels...)
	return v
}

// wantValue checks one value.
func wantValue(t *testing.T, r scrapeResult, want float64, name string, labels ...string) {
	t.Helper()
	if got := r.value(name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// wantFamilies checks that every family is exposed with its type.
func wantFamilies(t *testing.T, r scrapeResult, families map[string]string) {
	t.Helper()
	for name, typ := range families {
		if got, ok := r.types[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		} else if got != typ {
			t.Errorf("%s is a %s, want a %s", name, got, typ)
		}
	}
}

// waitValue waits until the metric has the value.
func waitValue(t *testing.T, base string, want float64, name string, labels ...string) {
	t.Helper()
	testkit.Eventually(t, waitLimit, func() error {
		status, body := get(t, base+"/metrics")
		if status != http.StatusOK {
			return fmt.Errorf("GET /metrics = %d", status)
		}
		r, err := parseMetrics(body)
		if err != nil {
			return err
		}
		if got := r.value(name, labels...); got != want {
			return fmt.Errorf("it is %v", got)
		}
		return nil
	}, "%s %s%v to become %v", base, name, labels, want)
}

// ---------------------------------------------------------------- socket.io clients

// client is a socket.io client connected as one user, with its session.
type client struct {
	*testkit.Client
	session map[string]any
}

// dial opens a socket as userID and waits for its session event.
func dial(t *testing.T, base, userID string) *client {
	t.Helper()
	c, err := tryDial(t, base, userID)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{Client: c}
	c.EventInto("session", &cl.session)
	return cl
}

// tryDial connects a socket as userID in dev mode.
func tryDial(t *testing.T, base, userID string) (*testkit.Client, error) {
	return testkit.TryConnect(t, base, testkit.Options{Auth: map[string]string{"userId": userID}, Timeout: waitLimit})
}

// ---------------------------------------------------------------- Redis

// startRedis starts a private redis-server on a free port; it stops when
// the test ends.
func startRedis(t *testing.T) *testkit.RedisServer {
	t.Helper()
	return testkit.StartRedisServer(t)
}

// ---------------------------------------------------------------- tests

// TestMetricsSingleInstance drives a single instance through a socket's life
// and checks that each metric moves by what the clients did.
func TestMetricsSingleInstance(t *testing.T) {
	cfg := testConfig("single")
	m, base := startMain(t, cfg)

	r := scrape(t, base)
	wantFamilies(t, r, map[string]string{
		"chatd_sockets":                 "gauge",
		"chatd_users":                   "gauge",
		"chatd_rooms":                   "gauge",
		"chatd_draining":                "gauge",
		"chatd_rate_limited_total":      "counter",
		"chatd_message_fanout_sockets":  "histogram",
		"go_goroutines":                 "gauge",
		"process_resident_memory_bytes": "gauge",
	})
	for _, name := range []string{"chatd_redis_ready", "chatd_cluster_nodes", "chatd_redis_command_seconds"} {
		if _, ok := r.types[name]; ok {
			t.Errorf("a single instance without Redis exposes %s", name)
		}
	}
	wantValue(t, r, 0, "chatd_sockets")
	wantValue(t, r, 0, "chatd_users")
	wantValue(t, r, 0, "chatd_draining")

	// alice with two tabs, bob with one.
	a1 := dial(t, base, "alice")
	a2 := dial(t, base, "alice")
	b := dial(t, base, "bob")
	r = scrape(t, base)
	wantValue(t, r, 3, "chatd_sockets")
	wantValue(t, r, 2, "chatd_users")
	wantValue(t, r, 3, "chatd_events_emitted_total", "event", "session")
	roomsBefore := r.value("chatd_rooms")

	a1.MustOK("join", map[string]any{"room": "lobby"})
	b.MustOK("join", map[string]any{"room": "lobby"})
	a1.MustOK("message", map[string]any{"room": "lobby", "text": "hello"})
	b.Event("message")
	a2.Event("message") // alice's other tab gets her message too

	r = scrape(t, base)
	wantValue(t, r, roomsBefore+1, "chatd_rooms")
	wantValue(t, r, 2, "chatd_events_received_total", "event", "join")
	wantValue(t, r, 1, "chatd_events_received_total", "event", "message")
	wantValue(t, r, 2, "chatd_acks_total", "event", "join", "code", "ok")
	wantValue(t, r, 1, "chatd_acks_total", "event", "message", "code", "ok")
	wantValue(t, r, 1, "chatd_events_emitted_total", "event", "message")
	wantValue(t, r, 2, "chatd_events_emitted_total", "event", "presence") // one "joined" per join
	// One message, delivered to alice's other tab and bob: a fan-out of 2.
	wantValue(t, r, 1, "chatd_message_fanout_sockets_count")
	wantValue(t, r, 2, "chatd_message_fanout_sockets_sum")

	// Refusals are counted by their code; unknown events by "unknown".
	a1.MustFail("message", map[string]any{"room": "elsewhere", "text": "x"}, "forbidden")
	a1.MustFail("join", map[string]any{"room": ""}, "bad_request")
	a1.MustFail("frobnicate", map[string]any{}, "bad_request")
	r = scrape(t, base)
	wantValue(t, r, 1, "chatd_acks_total", "event", "message", "code", "forbidden")
	wantValue(t, r, 1, "chatd_acks_total", "event", "join", "code", "bad_request")
	wantValue(t, r, 1, "chatd_acks_total", "event", "unknown", "code", "bad_request")
	wantValue(t, r, 1, "chatd_events_received_total", "event", "unknown")
	if _, ok := r.sum("chatd_events_received_total", "event", "frobnicate"); ok {
		t.Error("an unknown event name became a label value")
	}

	// A flood: more requests at once than the burst allows.
	flood := dial(t, base, "flooder")
	const n = 50 // burst 40: some are refused, fewer than the 20 strikes that disconnect
	ids := make([]int, n)
	for i := range ids {
		ids[i] = flood.Emit("rooms", map[string]any{})
	}
	limited := 0
	for _, id := range ids {
		if a := flood.Ack(id); !a.OK && a.Error.Code == "rate_limited" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatalf("%d requests at once were all accepted (burst %d)", n, cfg.Limits.EventBurst)
	}
	r = scrape(t, base)
	wantValue(t, r, float64(limited), "chatd_rate_limited_total")
	wantValue(t, r, float64(limited), "chatd_acks_total", "event", "rooms", "code", "rate_limited")
	wantValue(t, r, float64(n-limited), "chatd_acks_total", "event", "rooms", "code", "ok")

	// The server API counts requests by route and status.
	if status, body := get(t, base+"/api/v1/rooms/lobby/presence", "Authorization", "Bearer "+cfg.API.Token); status != http.StatusOK {
		t.Fatalf("API presence: %d %s", status, body)
	}
	if status, _ := get(t, base+"/api/v1/rooms/lobby/presence", "Authorization", "Bearer wrong"); status != http.StatusUnauthorized {
		t.Fatalf("API with a wrong token: %d, want 401", status)
	}
	r = scrape(t, base)
	wantValue(t, r, 1, "chatd_api_requests_total", "status", "200")
	wantValue(t, r, 1, "chatd_api_requests_total", "status", "401")
	wantFamilies(t, r, map[string]string{
		"chatd_events_received_total": "counter",
		"chatd_events_emitted_total":  "counter",
		"chatd_acks_total":            "counter",
		"chatd_api_requests_total":    "counter",
	})

	// bob leaves: one socket and one user fewer.
	b.Close()
	waitValue(t, base, 3, "chatd_sockets")
	waitValue(t, base, 2, "chatd_users")
	a2.Close()
	waitValue(t, base, 2, "chatd_sockets")
	waitValue(t, base, 2, "chatd_users") // alice still has a tab

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestMetricsCluster runs two instances on a private Redis: the Redis,
// Pub/Sub and cluster metrics appear and move, and they show Redis going
// away.
func TestMetricsCluster(t *testing.T) {
	rs := startRedis(t)
	cluster := func(id string) config.Config {
		cfg := testConfig(id)
		cfg.Redis.URL = rs.URL()
		cfg.Redis.Prefix = "runtest"
		cfg.Redis.Timeout = 500 * time.Millisecond
		cfg.Presence.TTL = 3 * time.Second
		cfg.Shutdown.Timeout = 5 * time.Second
		cfg.Shutdown.Drain = 0
		return cfg
	}
	mainA, baseA := startMain(t, cluster("node-a"))
	mainB, baseB := startMain(t, cluster("node-b"))
	for _, base := range []string{baseA, baseB} {
		waitValue(t, base, 2, "chatd_cluster_nodes")
		waitValue(t, base, 1, "chatd_redis_ready")
		if status, body := get(t, base+"/readyz"); status != http.StatusOK {
			t.Fatalf("%s/readyz = %d %s", base, status, body)
		}
	}

	alice := dial(t, baseA, "alice")
	bob := dial(t, baseB, "bob")
	alice.MustOK("join", map[string]any{"room": "lobby"})
	bob.MustOK("join", map[string]any{"room": "lobby"})
	alice.MustOK("message", map[string]any{"room": "lobby", "text": "across instances"})
	bob.Event("message")
	// A cluster-wide request: B looks up alice's socket, which is on A.
	sid, _ := alice.session["socketId"].(string)
	if status, body := get(t, baseB+"/api/v1/connections/"+sid, "Authorization", "Bearer run-test-api-token-0123456789abcdef"); status != http.StatusOK {
		t.Fatalf("B looking up a socket on A: %d %s", status, body)
	}

	a, b := scrape(t, baseA), scrape(t, baseB)
	for _, r := range []scrapeResult{a, b} {
		wantFamilies(t, r, map[string]string{
			"chatd_redis_command_seconds":  "histogram",
			"chatd_pubsub_published_total": "counter",
			"chatd_pubsub_received_total":  "counter",
			"chatd_cluster_nodes":          "gauge",
			"chatd_redis_ready":            "gauge",
		})
		if v := r.value("chatd_redis_command_seconds_count"); v == 0 {
			t.Error("no Redis command measured")
		}
		if v := r.value("chatd_redis_command_seconds_count", "command", "other"); v == r.value("chatd_redis_command_seconds_count") {
			t.Error("every Redis command is labelled other")
		}
	}
	if v := a.value("chatd_pubsub_published_total", "kind", "broadcast"); v < 1 {
		t.Errorf("A published %v broadcasts, want the message's", v)
	}
	if v := b.value("chatd_pubsub_received_total", "kind", "broadcast"); v < 1 {
		t.Errorf("B received %v broadcasts, want the message's", v)
	}
	if v := a.value("chatd_pubsub_received_total", "kind", "heartbeat"); v < 1 {
		t.Errorf("A received %v heartbeats of B", v)
	}
	if v := b.value("chatd_cluster_request_seconds_count", "kind", "fetch_sockets", "outcome", "ok"); v != 1 {
		t.Errorf("B's fetch_sockets requests = %v, want 1\n%s", v, grep(b.text, "chatd_cluster_request"))
	}

	// Redis goes away.
	// Redis goes away.
	rs.Stop()
	waitValue(t, baseA, 0, "chatd_redis_ready")
	if status, body := get(t, baseA+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz without Redis = %d %s, want 503", status, body)
	}
	alice.MustFail("message", map[string]any{"room": "lobby", "text": "nobody stores this"}, "unavailable")
	alice.Emit("typing", map[string]any{"room": "lobby", "typing": true}) // a broadcast that cannot be published
	testkit.Eventually(t, waitLimit, func() error {
		r := scrape(t, baseA)
		switch {
		case r.value("chatd_redis_command_errors_total") == 0:
			return errors.New("chatd_redis_command_errors_total is 0")
		case r.value("chatd_pubsub_publish_failures_total") == 0:
			return errors.New("chatd_pubsub_publish_failures_total is 0")
		case r.value("chatd_acks_total", "event", "message", "code", "unavailable") != 1:
			return errors.New("the unavailable message ack is not counted")
		}
		return nil
	}, "Redis errors and failed publishes to show")

	// SIGTERM while Redis is down still drains and ends in exit status 0.
	for _, m := range []*Main{mainA, mainB} {
		if err := m.Close(); err != nil {
			t.Errorf("Close with Redis down: %v; main would exit %d", err, exitCode(err))
		}
	}
}

// TestRedisCommandErrorsCountFailuresOnly: with Redis up and every request
// succeeding, no Redis command counts as failed, or an alert on
// chatd_redis_command_errors_total fires on a healthy cluster. Replies that
// are part of normal operation (NOSCRIPT before go-redis falls back to EVAL;
// CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS refused by Redis before 7.2
// when a connection opens) must not count.
func TestRedisCommandErrorsCountFailuresOnly(t *testing.T) {
	rs := startRedis(t)
	cfg := testConfig("errors")
	cfg.Redis.URL = rs.URL()
	cfg.Redis.Prefix = "errtest"
	_, base := startMain(t, cfg)
	waitValue(t, base, 1, "chatd_redis_ready")
	c := dial(t, base, "alice")
	c.MustOK("join", map[string]any{"room": "lobby"})
	c.MustOK("message", map[string]any{"room": "lobby", "text": "hello", "clientMsgId": "m1"})
	c.MustOK("message", map[string]any{"room": "lobby", "text": "hello", "clientMsgId": "m1"})
	c.MustOK("history", map[string]any{"room": "lobby"})
	c.MustOK("presence", map[string]any{"room": "lobby"})
	c.MustOK("leave", map[string]any{"room": "lobby"})
	r := scrape(t, base)
	if r.value("chatd_redis_command_seconds_count") == 0 {
		t.Fatal("no Redis command measured")
	}
	if v := r.value("chatd_redis_command_errors_total"); v != 0 {
		t.Errorf("chatd_redis_command_errors_total = %v while Redis is up and every request succeeded:\n%s",
			v, grep(r.text, "chatd_redis_command_errors_total{"))
	}
}

// TestDrain stops chatd the way SIGTERM does, with 20 sockets connected and
// a drain window of 1 s: /readyz says 503 and new Engine.IO sessions are
// refused while sockets are still connected, the sockets' transports close
// spread over the window (not with a socket.io disconnect, so clients
// reconnect by themselves), and run returns nil, which main turns into exit
// status 0.
func TestDrain(t *testing.T) {
	const (
		sockets = 20
		window  = time.Second
	)
	logs := newSyncBuffer()
	env := map[string]string{
		"CHATD_LISTEN":           "127.0.0.1:0",
		"CHATD_SHUTDOWN_DRAIN":   window.String(),
		"CHATD_SHUTDOWN_TIMEOUT": "10s",
		"CHATD_LOG_LEVEL":        "info",
		"CHATD_INSTANCE_ID":      "drain-test",
	}
	ctx, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logs) }()
	defer func() {
		if t.Failed() {
			t.Logf("chatd log:\n%s", logs)
		}
	}()

	// The address is in the "chatd serving" log line.
	var addr string
	addrRE := regexp.MustCompile(`msg="chatd serving".* addr=(\S+)`)
	testkit.Eventually(t, waitLimit, func() error {
		select {
		case err := <-ran:
			t.Fatalf("run returned before serving: %v", err)
		default:
		}
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return nil
		}
		return errors.New("not yet")
	}, "chatd to log its address")
	base := "http://" + addr

	clients := make([]*client, sockets)
	for i := range clients {
		clients[i] = dial(t, base, fmt.Sprintf("user-%d", i))
		clients[i].MustOK("join", map[string]any{"room": "lobby"})
	}
	if status, _ := get(t, base+"/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz before the drain = %d", status)
	}

	sigterm() // what SIGTERM does to main's context
	testkit.Eventually(t, waitLimit, func() error {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("chatd stopped answering before /readyz said 503: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz = %d", res.StatusCode)
		}
		return nil
	}, "/readyz to say 503")
	open := 0
	for _, c := range clients {
		select {
		case <-c.Done():
		default:
			open++
		}
	}
	if open == 0 {
		t.Fatal("every socket was gone before /readyz said 503")
	}
	// New sessions are refused on both transports, while sockets still drain.
	status, body := get(t, base+"/socket.io/?EIO=4&transport=polling")
	if status != http.StatusForbidden || !strings.Contains(body, "shutting down") {
		t.Errorf("a polling handshake during the drain = %d %s, want 403 saying the instance is shutting down", status, body)
	}
	if c, err := tryDial(t, base, "latecomer"); err == nil {
		c.Close()
		t.Error("a WebSocket session was opened during the drain")
	}
	if r := scrape(t, base); r.value("chatd_draining") != 1 {
		t.Errorf("chatd_draining = %v during the drain, want 1", r.value("chatd_draining"))
	}

	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("run returned %v after SIGTERM; main would exit %d", err, exitCode(err))
		}
	case <-time.After(waitLimit):
		t.Fatal("run did not return after SIGTERM")
	}

	var first, last time.Time
	for i, c := range clients {
		closed := c.ClosedAt() // run returned: every transport is closed
		if first.IsZero() || closed.Before(first) {
			first = closed
		}
		if closed.After(last) {
			last = closed
		}
		for _, p := range c.Unread() {
			if p.Type == '1' {
				t.Errorf("socket %d got a socket.io disconnect packet; a drained client must see its transport close so that it reconnects", i)
			}
		}
	}
	spread := last.Sub(first)
	t.Logf("%d sockets closed over %v (drain window %v)", sockets, spread, window)
	if spread < window/3 {
		t.Errorf("the %d sockets were closed within %v of each other; a drain window of %v should spread them over more than a third of it", sockets, spread, window)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts connections after run returned")
	}
	if !strings.Contains(logs.String(), `msg=stopped`) {
		t.Error(`the log does not end with "stopped"`)
	}
}

// grep returns the lines of text that contain s.
func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
