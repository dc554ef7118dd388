package testkit

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeServer speaks just enough socket.io to check the client: it pings
// once, refuses a CONNECT without auth, answers every request {"ok":true}
// and then emits "done" with the request's payload.
func fakeServer(t *testing.T, pongs *atomic.Int32) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		send := func(s string) { _ = conn.WriteMessage(websocket.TextMessage, []byte(s)) }
		send(`0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
		send("2")
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			s := string(b)
			switch {
			case s == "3":
				pongs.Add(1)
			case s == "40":
				send(`44{"message":"auth required"}`)
			case strings.HasPrefix(s, "40{"):
				send(`40{"sid":"x"}`)
			case strings.HasPrefix(s, "42"):
				p, _ := ParsePacket(s[1:])
				var args []json.RawMessage
				_ = json.Unmarshal(p.Data, &args)
				send(`42["noise",1]`)
				if p.ID >= 0 {
					send("43" + strconv.Itoa(p.ID) + `[{"ok":true}]`)
				}
				send(`42["done",` + string(args[1]) + `]`)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientConnectsRequestsAndWaitsForEvents(t *testing.T) {
	var pongs atomic.Int32
	base := fakeServer(t, &pongs)
	c := Connect(t, base, Options{Auth: map[string]string{"userId": "alice"}})
	if got := string(c.Connected()); got != `{"sid":"x"}` {
		t.Fatalf("Connected() = %s, want the CONNECT answer's data", got)
	}
	if a := c.MustOK("join", map[string]string{"room": "r"}); !strings.Contains(string(a.Raw), `"ok":true`) {
		t.Fatalf("ack raw %s", a.Raw)
	}
	var got map[string]string
	c.EventInto("done", &got)
	if got["room"] != "r" {
		t.Fatalf("done event %v, want the request's payload", got)
	}
	// The event the client skipped while waiting is still there.
	if args := c.Event("noise"); len(args) != 1 || string(args[0]) != "1" {
		t.Fatalf("noise args %s", args)
	}
	Eventually(t, time.Second, func() bool { return pongs.Load() == 1 }, "the client to answer the ping")
	c.Close()
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after Close")
	}
}

func TestTryConnectReportsAConnectError(t *testing.T) {
	var pongs atomic.Int32
	base := fakeServer(t, &pongs)
	if _, err := TryConnect(t, base, Options{}); err == nil || !strings.Contains(err.Error(), "auth required") {
		t.Fatalf("TryConnect without auth = %v, want the connect_error", err)
	}
}

func TestEventuallyTakesBothKindsOfCondition(t *testing.T) {
	n := 0
	Eventually(t, time.Second, func() bool { n++; return n == 3 }, "a bool condition")
	m := 0
	Eventually(t, time.Second, func() error {
		if m++; m < 3 {
			return errors.New("not yet")
		}
		return nil
	}, "an error condition")
}
