package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// apiWait bounds every wait of the API tests for something that must
// happen.
const apiWait = 5 * time.Second

// apiTestServer runs a socket server with memory stores and the server API
// with the given settings mounted on it, behind a real HTTP listener.
func apiTestServer(t *testing.T, cfg Config) (*Handler, *httptest.Server) {
	t.Helper()
	return apiTestServerWith(t, server.Config{MessageBytes: 64}, cfg)
}

// apiTestServerWith is apiTestServer with the socket server's settings too.
func apiTestServerWith(t *testing.T, scfg server.Config, cfg Config) (*Handler, *httptest.Server) {
	t.Helper()
	chat, err := rooms.NewChat(rooms.Limits{MessageBytes: 64}, rooms.Stores{
		Membership:  rooms.NewMemoryMembership(),
		Presence:    rooms.NewMemoryPresence(),
		History:     rooms.NewMemoryHistory(100),
		Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(scfg, server.Deps{Chat: chat})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Deps{Chat: chat, Delivery: s.Delivery(), Members: s, Guard: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Patterns() {
		s.Handle(p, a)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		_ = s.Close()
		ts.Close()
	})
	return a, ts
}

// apiEvent is one socket.io event a test client received.
type apiEvent struct {
	name    string
	payload any
}

// apiClient is a minimal socket.io v5 client over a raw WebSocket: enough
// to connect, join rooms and watch what the server emits.
type apiClient struct {
	t       *testing.T
	conn    *websocket.Conn
	id      string
	session map[string]any

	wmu sync.Mutex // guards writes to conn

	mu      sync.Mutex // guards the following fields
	events  []apiEvent
	acks    map[int]any
	gone    bool // the server disconnected the socket or closed the connection
	changed chan struct{}
	nextAck int
}

// apiDial connects a client with the given dev-mode auth and waits for its
// session event.
func apiDial(t *testing.T, ts *httptest.Server, auth map[string]any, header http.Header) *apiClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	c := &apiClient{t: t, conn: conn, acks: map[int]any{}, changed: make(chan struct{})}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(apiWait))
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("engine.io open: %q %v", open, err)
	}
	a, _ := json.Marshal(auth)
	c.write("40" + string(a))
	if _, ok, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(ok), "40") {
		t.Fatalf("socket.io connect: %q %v", ok, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go c.read()
	sess, _ := c.next("session").(map[string]any)
	c.session = sess
	c.id, _ = sess["socketId"].(string)
	if c.id == "" {
		t.Fatalf("session without socketId: %v", sess)
	}
	return c
}

func (c *apiClient) write(frame string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(frame))
}

// read records frames until the connection ends.
func (c *apiClient) read() {
	defer c.update(func() { c.gone = true })
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		f := string(b)
		switch {
		case f == "2":
			c.write("3")
		case strings.HasPrefix(f, "41"):
			c.update(func() { c.gone = true })
		case strings.HasPrefix(f, "42"):
			var arr []any
			if json.Unmarshal([]byte(f[2:]), &arr) == nil && len(arr) > 0 {
				name, _ := arr[0].(string)
				var payload any
				if len(arr) > 1 {
					payload = arr[1]
				}
				c.update(func() { c.events = append(c.events, apiEvent{name, payload}) })
			}
		case strings.HasPrefix(f, "43"):
			i := strings.IndexByte(f, '[')
			var id int
			var arr []any
			if i > 2 && json.Unmarshal([]byte(f[2:i]), &id) == nil && json.Unmarshal([]byte(f[i:]), &arr) == nil && len(arr) > 0 {
				c.update(func() { c.acks[id] = arr[0] })
			}
		}
	}
}

// update changes the client's state under its lock and wakes waiters.
func (c *apiClient) update(f func()) {
	c.mu.Lock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// waitFor waits until cond (called under the lock) is true.
func (c *apiClient) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(apiWait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.mu.Lock()
			defer c.mu.Unlock()
			c.t.Fatalf("%s: not within %v; events so far: %v", what, apiWait, c.events)
		}
	}
}

// next returns (and consumes) the first event called name.
func (c *apiClient) next(name string) any {
	c.t.Helper()
	var got any
	c.waitFor("event "+name, func() bool {
		for i, e := range c.events {
			if e.name == name {
				got = e.payload
				c.events = append(c.events[:i], c.events[i+1:]...)
				return true
			}
		}
		return false
	})
	return got
}

// has reports whether an event called name was received and not consumed.
func (c *apiClient) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.name == name {
			return true
		}
	}
	return false
}

// try sends a request and returns its acknowledgement, ok or not.
func (c *apiClient) try(event string, payload any) map[string]any {
	c.t.Helper()
	c.mu.Lock()
	c.nextAck++
	id := c.nextAck
	c.mu.Unlock()
	b, _ := json.Marshal([]any{event, payload})
	c.write("42" + strconv.Itoa(id) + string(b))
	var ack any
	c.waitFor("ack of "+event, func() bool {
		a, ok := c.acks[id]
		ack = a
		return ok
	})
	m, _ := ack.(map[string]any)
	return m
}

// request sends a request and returns its acknowledgement, which must be ok.
func (c *apiClient) request(event string, payload map[string]any) map[string]any {
	c.t.Helper()
	m := c.try(event, payload)
	if m["ok"] != true {
		c.t.Fatalf("%s %v: %v", event, payload, m)
	}
	return m
}

// join joins room.
func (c *apiClient) join(room string) { c.t.Helper(); c.request("join", map[string]any{"room": room}) }

// waitGone waits until the server disconnected the client.
func (c *apiClient) waitGone() {
	c.t.Helper()
	c.waitFor("disconnect", func() bool { return c.gone })
}

// isGone reports whether the server disconnected the client.
func (c *apiClient) isGone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gone
}
