package events

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatd/chatd/internal/signature"
	"github.com/chatd/chatd/internal/testkit"
)

var testSecret = []byte("a-secret-of-at-least-thirty-two-bytes!")

// backend is a test backend that records the batches it accepts and fails
// the first `fail` POSTs with status 503.
type backend struct {
	t    *testing.T
	mu   sync.Mutex
	fail int
	got  []Event
	hits int
	bad  []string // signature problems
	seen chan struct{}
}

func newBackend(t *testing.T, fail int) (*backend, *httptest.Server) {
	b := &backend{t: t, fail: fail, seen: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(srv.Close)
	return b, srv
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	defer func() {
		b.mu.Unlock()
		b.seen <- struct{}{}
	}()
	b.hits++
	if err := signature.Verify(r.Header, testSecret, time.Now(), 0, body); err != nil {
		b.bad = append(b.bad, err.Error())
	}
	if b.fail > 0 {
		b.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var in batch
	if err := json.Unmarshal(body, &in); err != nil {
		b.t.Errorf("the body is not a batch: %v: %s", err, body)
	}
	b.got = append(b.got, in.Events...)
	w.WriteHeader(http.StatusNoContent)
}

func (b *backend) events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.got...)
}

// fastSender is a sender whose back-off waits are a millisecond.
func fastSender(t *testing.T, url string, q Queue, m *Metrics, edit func(*SenderConfig)) *Sender {
	t.Helper()
	cfg := SenderConfig{URL: url, Secret: testSecret, Timeout: time.Second, BatchWait: 0}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewSender(cfg, q, m)
	if err != nil {
		t.Fatal(err)
	}
	s.sleep = func(ctx context.Context, _ time.Duration) bool { return sleepCtx(ctx, time.Millisecond) }
	return s
}

func run(t *testing.T, s *Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, cond, "waiting for %s", what)
}

func publish(p *Publisher, n int) {
	for i := range n {
		p.Publish(MessageCreated, map[string]any{"i": i})
	}
}

func TestSenderRetriesUntilDelivered(t *testing.T) {
	b, srv := newBackend(t, 3)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	q := NewMemoryQueue(100, m)
	p := NewPublisher(q, nil, m, nil)
	s := fastSender(t, srv.URL, q, m, func(c *SenderConfig) { c.BatchMax = 10 })
	publish(p, 5)
	run(t, s)
	waitFor(t, "5 events delivered", func() bool { return testutil.ToFloat64(m.delivered) == 5 })
	got := b.events()
	ids := map[string]bool{}
	for i, e := range got {
		ids[e.ID] = true
		var d map[string]int
		if err := json.Unmarshal(e.Data, &d); err != nil || d["i"] != i {
			t.Errorf("event %d has data %s, want i=%d (in order)", i, e.Data, i)
		}
		if e.Type != MessageCreated || e.Time == 0 {
			t.Errorf("event %d = %+v", i, e)
		}
	}
	if len(ids) != 5 {
		t.Errorf("%d distinct ids, want 5", len(ids))
	}
	if len(b.bad) > 0 {
		t.Errorf("signatures did not verify: %v", b.bad)
	}
	if n := testutil.ToFloat64(m.retries); n != 3 {
		t.Errorf("retries = %v, want 3", n)
	}
	if n := testutil.ToFloat64(m.failures.WithLabelValues(FailStatus)); n != 3 {
		t.Errorf("status failures = %v, want 3", n)
	}
	waitFor(t, "an empty queue", func() bool { n, _ := q.Depth(context.Background()); return n == 0 })
}

func TestSenderBatches(t *testing.T) {
	b, srv := newBackend(t, 0)
	m := NewMetrics(nil)
	q := NewMemoryQueue(100, m)
	p := NewPublisher(q, nil, m, nil)
	publish(p, 25)
	s := fastSender(t, srv.URL, q, m, func(c *SenderConfig) { c.BatchMax = 10; c.BatchWait = 50 * time.Millisecond })
	run(t, s)
	waitFor(t, "25 events", func() bool { return len(b.events()) == 25 })
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hits != 3 {
		t.Errorf("%d POSTs for 25 events of at most 10, want 3", b.hits)
	}
}

func TestSenderTypeFilter(t *testing.T) {
	q := NewMemoryQueue(10, nil)
	p := NewPublisher(q, []string{UserOnline}, nil, nil)
	p.Publish(MessageCreated, map[string]any{})
	p.Publish(UserOnline, map[string]any{"userId": "alice"})
	if n, _ := q.Depth(context.Background()); n != 1 {
		t.Fatalf("depth %d, want only the user.online event", n)
	}
}

// TestSenderFailures: a backend that is slow, down, redirects or answers
// something that is not HTTP fails the attempt, is counted, and the batch
// is retried; nothing crashes.
func TestSenderFailures(t *testing.T) {
	garbage := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("\x00\x01 this is not HTTP\r\n\r\n"))
				_ = c.Close()
			}
		}()
		return "http://" + ln.Addr().String()
	}
	tests := []struct {
		name   string
		url    func(t *testing.T) string
		reason string
	}{
		{"garbage", garbage, FailResponse},
		{"down", func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			_ = ln.Close()
			return "http://" + addr
		}, FailConnect},
		{"slow", func(t *testing.T) string {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
			t.Cleanup(func() { close(release); srv.Close() })
			return srv.URL
		}, FailTimeout},
		{"redirect", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}, FailStatus},
		{"huge answer", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				chunk := make([]byte, 1<<20)
				for range 64 {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}, FailStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics(nil)
			q := NewMemoryQueue(10, m)
			NewPublisher(q, nil, m, nil).Publish(UserOnline, map[string]any{"userId": "a"})
			s := fastSender(t, tt.url(t), q, m, func(c *SenderConfig) { c.Timeout = 200 * time.Millisecond })
			run(t, s)
			waitFor(t, "two failed attempts", func() bool { return testutil.ToFloat64(m.failures.WithLabelValues(tt.reason)) >= 2 })
			if n, _ := q.Depth(context.Background()); n != 1 {
				t.Errorf("depth %d, want the event still queued", n)
			}
		})
	}
}

func TestSenderDropsExpired(t *testing.T) {
	_, srv := newBackend(t, 1_000_000)
	m := NewMetrics(nil)
	q := NewMemoryQueue(10, m)
	// The sender's clock starts no later than the event's time, which has
	// whole milliseconds: taken after it, it could be a millisecond ahead,
	// and the attempt at 60 s would find the event a millisecond too old.
	now := time.Now()
	NewPublisher(q, nil, m, nil).Publish(UserOnline, map[string]any{"userId": "a"})
	s := fastSender(t, srv.URL, q, m, func(c *SenderConfig) { c.RetryFor = time.Minute })
	var mu sync.Mutex
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s.sleep = func(ctx context.Context, _ time.Duration) bool {
		mu.Lock()
		now = now.Add(20 * time.Second)
		mu.Unlock()
		return sleepCtx(ctx, time.Millisecond)
	}
	run(t, s)
	waitFor(t, "the event dropped", func() bool { return testutil.ToFloat64(m.dropped.WithLabelValues(DropExpired)) == 1 })
	if n, _ := q.Depth(context.Background()); n != 0 {
		t.Errorf("depth %d after the drop, want 0", n)
	}
	// Attempts at 0, 20 s, 40 s and 60 s are within the minute.
	if n := testutil.ToFloat64(m.failures.WithLabelValues(FailStatus)); n != 4 {
		t.Errorf("%v failed attempts, want 4", n)
	}
}

func TestMemoryQueueDropsOldest(t *testing.T) {
	m := NewMetrics(nil)
	q := NewMemoryQueue(3, m)
	ctx := context.Background()
	add := func(id string) { q.Add([]Event{{ID: id}}) }
	add("a")
	inflight, _ := q.Next(ctx, 1, 0) // a
	for _, id := range []string{"b", "c", "d"} {
		add(id)
	}
	got, _ := q.Next(ctx, 10, 0)
	if len(got) != 2 || got[0].ID != "c" || got[1].ID != "d" {
		t.Fatalf("queue holds %v, want c, d (b dropped, a in flight)", got)
	}
	if n := testutil.ToFloat64(m.dropped.WithLabelValues(DropQueueFull)); n != 1 {
		t.Errorf("dropped %v, want 1", n)
	}
	add("e") // all three in flight: the new one is dropped
	if n, _ := q.Depth(ctx); n != 3 {
		t.Errorf("depth %d, want 3", n)
	}
	_ = q.Done(ctx, inflight)
	q.Close()
	if n := testutil.ToFloat64(m.dropped.WithLabelValues(DropShutdown)); n != 2 {
		t.Errorf("dropped at shutdown %v, want 2", n)
	}
}

func TestNewID(t *testing.T) {
	at := time.UnixMilli(1765108800123)
	a, b := NewID(at), NewID(at.Add(time.Millisecond))
	if len(a) != 36 || a[14] != '7' || a == b || a > b {
		t.Fatalf("ids %s, %s: want UUIDv7s that sort by time", a, b)
	}
}
