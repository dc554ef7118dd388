package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
)

// guardTestServer runs a Server with memory stores and cfg behind a real
// HTTP listener.
func guardTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	chat, err := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership:  rooms.NewMemoryMembership(),
		Presence:    rooms.NewMemoryPresence(),
		History:     rooms.NewMemoryHistory(100),
		Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Deps{Chat: chat})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		_ = s.Close()
		ts.Close()
	})
	return s, ts
}

// metricValue reads one series of /metrics as text, "" when absent.
func metricValue(t *testing.T, ts *httptest.Server, series string) string {
	t.Helper()
	_, body := get(t, ts.URL+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
