package sioadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// adapterTestTimeout bounds every wait of the adapter tests.
const adapterTestTimeout = 10 * time.Second

// adapterTestOptions are short intervals so that the tests run quickly.
func adapterTestOptions(t testing.TB, prefix string) AdapterOptions {
	return AdapterOptions{
		Prefix:            prefix,
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  700 * time.Millisecond,
		RequestTimeout:    3 * time.Second,
		PublishTimeout:    300 * time.Millisecond,
		Logger:            adapterTestLogger(t),
	}
}

// adapterTestNode is one chatd-like instance: a socket.io server with the
// Redis adapter, served on a loopback port.
type adapterTestNode struct {
	builder *AdapterBuilder
	io      *socket.Server
	http    *httptest.Server
	url     string
}

type adapterNodeConfig struct {
	opts AdapterOptions
	// recoveryMs turns connection state recovery on with this maximum
	// disconnection duration, in milliseconds.
	recoveryMs int64
	// separateRecord records and publishes a broadcast in two commands, as
	// on Redis Cluster, even on one Redis server.
	separateRecord bool
}

// adapterTestIDs numbers the instance ids the tests give their nodes.
var adapterTestIDs atomic.Int64

func newAdapterTestNode(t testing.TB, rdb goredis.UniversalClient, cfg adapterNodeConfig) *adapterTestNode {
	t.Helper()
	if cfg.opts.InstanceID == "" {
		cfg.opts.InstanceID = fmt.Sprintf("node-%d", adapterTestIDs.Add(1))
	}
	b, err := NewAdapterBuilder(rdb, cfg.opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.separateRecord {
		b.rec.oneServer = false // before any socket can broadcast
	}
	opts := socket.DefaultServerOptions()
	opts.SetAdapter(b)
	if cfg.recoveryMs > 0 {
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(cfg.recoveryMs)
		opts.SetConnectionStateRecovery(csr)
	}
	io := socket.NewServer(nil, opts)
	_ = io.On("connection", func(args ...any) {
		s := args[0].(*socket.Socket)
		auth := s.Handshake().Auth
		if !s.Recovered() {
			s.SetData(map[string]any{"userId": auth["userId"], "name": auth["name"], "connectedAt": time.Now().UnixMilli()})
			if rooms, ok := auth["rooms"].([]any); ok {
				for _, r := range rooms {
					if name, ok := r.(string); ok {
						s.Join(socket.Room(name))
					}
				}
			}
		}
		_ = s.Emit("ready", string(s.Id()), s.Recovered())
	})
	srv := httptest.NewServer(io.ServeHandler(nil))
	n := &adapterTestNode{builder: b, io: io, http: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket"}
	t.Cleanup(func() {
		done := make(chan struct{})
		io.Close(func(error) { close(done) })
		select {
		case <-done:
		case <-time.After(adapterTestTimeout):
		}
		srv.Close()
		_ = b.Close()
	})
	return n
}

func (n *adapterTestNode) adapter() *RedisAdapter {
	return n.io.Of("/", nil).Adapter().(*RedisAdapter)
}

// all targets every socket of the namespace, on every instance.
func (n *adapterTestNode) all() *socket.BroadcastOperator {
	return socket.NewBroadcastOperator(n.adapter(), nil, nil, nil)
}

// fetch runs fetchSockets on this node.
func (n *adapterTestNode) fetch(op *socket.BroadcastOperator) ([]*socket.RemoteSocket, error) {
	var got []*socket.RemoteSocket
	var gotErr error
	op.FetchSockets()(func(s []*socket.RemoteSocket, err error) { got, gotErr = s, err })
	return got, gotErr
}

// adapterWaitFor polls cond until it holds, failing the test after
// adapterTestTimeout.
func adapterWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(adapterTestTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitNodes waits until every builder counts n instances.
func waitNodes(t testing.TB, n int, nodes ...*adapterTestNode) {
	t.Helper()
	adapterWaitFor(t, fmt.Sprintf("%d nodes", n), func() bool {
		for _, node := range nodes {
			if !node.builder.Ready() || node.builder.Nodes() != n {
				return false
			}
		}
		return true
	})
}

// waitSubscribers waits until Redis counts n subscribers of channel.
func waitSubscribers(t testing.TB, rdb *goredis.Client, channel string, n int64) {
	t.Helper()
	adapterWaitFor(t, fmt.Sprintf("%d subscribers of %s", n, channel), func() bool {
		got, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && got[channel] == n
	})
}

// adapterTestClient speaks Engine.IO v4 / Socket.IO v5 over a websocket,
// like a browser's socket.io-client, on the main namespace.
type adapterTestClient struct {
	t    testing.TB
	conn *websocket.Conn

	wmu sync.Mutex // serializes writes

	sid, pid string
	connect  chan map[string]any
	events   chan []any
	closed   chan struct{}

	mu         sync.Mutex // guards lastOffset
	lastOffset string
}

func dialAdapterTestClient(t testing.TB, url string, auth map[string]any) *adapterTestClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	c := &adapterTestClient{
		t:       t,
		conn:    conn,
		connect: make(chan map[string]any, 1),
		events:  make(chan []any, 1024),
		closed:  make(chan struct{}),
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(adapterTestTimeout))
	_, open, err := conn.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("engine.io open packet: %q, %v", open, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read()
	payload, _ := json.Marshal(auth)
	c.write("40" + string(payload))
	select {
	case info := <-c.connect:
		if msg, ok := info["message"]; ok {
			t.Fatalf("connect refused: %v", msg)
		}
		c.sid, _ = info["sid"].(string)
		c.pid, _ = info["pid"].(string)
	case <-c.closed:
		t.Fatal("connection closed before the socket.io connect")
	case <-time.After(adapterTestTimeout):
		t.Fatal("no socket.io connect")
	}
	return c
}

func (c *adapterTestClient) write(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(s))
}

func (c *adapterTestClient) read() {
	defer close(c.closed)
	var binHeader []any
	var attachments [][]byte
	want := 0
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			attachments = append(attachments, data)
			if len(attachments) == want {
				c.deliver(replacePlaceholders(binHeader, attachments).([]any))
				binHeader, attachments, want = nil, nil, 0
			}
			continue
		}
		s := string(data)
		switch {
		case s == "2":
			c.write("3")
		case strings.HasPrefix(s, "40"), strings.HasPrefix(s, "44"):
			var info map[string]any
			_ = json.Unmarshal(data[2:], &info)
			if info == nil {
				info = map[string]any{}
			}
			c.connect <- info
		case s == "41":
			c.deliver([]any{"__disconnect"})
		case strings.HasPrefix(s, "42"):
			body := s[2:]
			ackID := body[:len(body)-len(strings.TrimLeft(body, "0123456789"))]
			var args []any
			if err := json.Unmarshal([]byte(body[len(ackID):]), &args); err != nil {
				c.t.Errorf("bad event %q: %v", s, err)
				continue
			}
			if ackID != "" {
				// Acknowledge with the socket id, like a client calling
				// its callback with it.
				answer, _ := json.Marshal([]any{c.sid})
				c.write("43" + ackID + string(answer))
			}
			c.deliver(args)
		case strings.HasPrefix(s, "45"):
			count, rest, _ := strings.Cut(s[2:], "-")
			want, _ = strconv.Atoi(count)
			if err := json.Unmarshal([]byte(rest), &binHeader); err != nil {
				c.t.Errorf("bad binary event %q: %v", s, err)
			}
		}
	}
}

func replacePlaceholders(v any, buffers [][]byte) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = replacePlaceholders(x[i], buffers)
		}
		return x
	case map[string]any:
		if ph, ok := x["_placeholder"].(bool); ok && ph {
			if num, ok := x["num"].(float64); ok && int(num) < len(buffers) {
				return buffers[int(num)]
			}
		}
		for k := range x {
			x[k] = replacePlaceholders(x[k], buffers)
		}
		return x
	default:
		return x
	}
}

func (c *adapterTestClient) deliver(args []any) {
	if n := len(args); n > 1 {
		if off, ok := args[n-1].(string); ok {
			c.mu.Lock()
			c.lastOffset = off
			c.mu.Unlock()
		}
	}
	c.events <- args
}

func (c *adapterTestClient) offset() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOffset
}

// next returns the next event the client received.
func (c *adapterTestClient) next() []any {
	c.t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-time.After(adapterTestTimeout):
		c.t.Fatalf("client %s: no event", c.sid)
		return nil
	}
}

// until returns the events received before the first event named name.
func (c *adapterTestClient) until(name string) [][]any {
	c.t.Helper()
	var before [][]any
	for {
		ev := c.next()
		if len(ev) > 0 && ev[0] == name {
			return before
		}
		before = append(before, ev)
	}
}

// waitReady consumes the "ready" event the test server emits once the
// socket has joined its rooms.
func (c *adapterTestClient) waitReady() []any {
	c.t.Helper()
	for {
		ev := c.next()
		if len(ev) > 0 && ev[0] == "ready" {
			return ev
		}
	}
}

// drop closes the TCP connection without a goodbye, as a network failure
// would.
func (c *adapterTestClient) drop() {
	_ = c.conn.UnderlyingConn().Close()
	<-c.closed
}

// adapterEventNames lists the names of events.
func adapterEventNames(events [][]any) []string {
	names := make([]string, len(events))
	for i, ev := range events {
		if len(ev) > 0 {
			names[i], _ = ev[0].(string)
		}
	}
	return names
}

// adapterTestLogger logs through t.Log until the test ends.
func adapterTestLogger(t testing.TB) *slog.Logger {
	w := &adapterTestLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type adapterTestLogWriter struct {
	t    testing.TB
	mu   sync.Mutex // guards done
	done bool
}

func (w *adapterTestLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// adapterEvalCalls returns how many EVAL commands the Redis server ran.
func adapterEvalCalls(t testing.TB, rdb *goredis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_eval:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}
