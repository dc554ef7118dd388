package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/rooms"
)

func newRoutesServer(t *testing.T, cfg Config, ready func() bool) *httptest.Server {
	t.Helper()
	chat, err := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership:  rooms.NewMemoryMembership(),
		Presence:    rooms.NewMemoryPresence(),
		History:     rooms.NewMemoryHistory(10),
		Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Deps{Chat: chat, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close()
	})
	return ts
}

// serverOf returns the Server behind a test server made by newRoutesServer.
func serverOf(t *testing.T, ts *httptest.Server) *Server {
	t.Helper()
	s, ok := ts.Config.Handler.(*Server)
	if !ok {
		t.Fatalf("handler is %T", ts.Config.Handler)
	}
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	var redisUp atomic.Bool
	redisUp.Store(true)
	chat, _ := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership: rooms.NewMemoryMembership(), Presence: rooms.NewMemoryPresence(),
		History: rooms.NewMemoryHistory(10), Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	s, err := New(Config{}, Deps{Chat: chat, Ready: redisUp.Load})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if code, _ := get(t, ts.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d", code)
	}
	redisUp.Store(false)
	if code, body := get(t, ts.URL+"/readyz"); code != 503 || !strings.Contains(body, "redis") {
		t.Fatalf("readyz with Redis down = %d %s", code, body)
	}
	redisUp.Store(true)
	s.Drain(context.Background(), 0)
	if code, body := get(t, ts.URL+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("readyz while draining = %d %s", code, body)
	}
	if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz while draining = %d", code)
	}
	// New Engine.IO sessions are refused while draining.
	if code, _ := get(t, ts.URL+"/socket.io/?EIO=4&transport=polling"); code == 200 {
		t.Fatal("a new polling session was accepted while draining")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestOptionalRoutes(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		path string
		want int
	}{
		{"metrics on", Config{Metrics: true}, "/metrics", 200},
		{"metrics off", Config{}, "/metrics", 404},
		{"pprof on", Config{Pprof: true}, "/debug/pprof/", 200},
		{"pprof off", Config{}, "/debug/pprof/", 404},
		{"client config", Config{AuthMode: AuthDev}, "/chatd/config.json", 200},
		{"web off", Config{}, "/", 404},
		{"web on", Config{Web: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })}, "/", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newRoutesServer(t, tt.cfg, nil)
			if code, body := get(t, ts.URL+tt.path); code != tt.want {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, code, body, tt.want)
			}
		})
	}
	ts := newRoutesServer(t, Config{AuthMode: AuthDev, MessageBytes: 100, Metrics: true}, nil)
	if _, body := get(t, ts.URL+"/chatd/config.json"); !strings.Contains(body, `"authMode":"dev"`) || !strings.Contains(body, `"messageBytes":100`) {
		t.Fatalf("config.json = %s", body)
	}
	if _, body := get(t, ts.URL+"/metrics"); !strings.Contains(body, "chatd_sockets") {
		t.Fatal("metrics lack chatd_sockets")
	}
}

// An Engine.IO session that never connected a socket.io socket still holds
// a long-poll; the drain must end it, or the HTTP server's shutdown waits
// out the ping interval (25 s).
func TestDrainEndsBareEngineSessions(t *testing.T) {
	ts := newRoutesServer(t, Config{}, nil)
	open := testkit.PollHandshake(t, ts.URL+"/socket.io/?EIO=4&transport=polling")
	polled := make(chan int, 1)
	go func() {
		res, err := http.Get(ts.URL + "/socket.io/?EIO=4&transport=polling&sid=" + open.SID)
		if err != nil {
			polled <- -1
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		polled <- res.StatusCode
	}()
	srv := serverOf(t, ts)
	// The poll must be pending before the drain for the test to mean anything.
	testkit.Eventually(t, 5*time.Second, func() bool { return srv.io.Engine().ClientsCount() == 1 }, "the engine to hold the session")
	srv.Drain(context.Background(), 0)
	select {
	case <-polled:
	case <-time.After(10 * time.Second):
		t.Fatal("the pending long-poll of a bare Engine.IO session outlived the drain")
	}
}
