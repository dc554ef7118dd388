package server

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/rooms"
)

// countingMembership counts the membership checks that reach the store.
type countingMembership struct {
	*rooms.MemoryMembership
	checks atomic.Int64
}

func (m *countingMembership) IsMember(ctx context.Context, userID, room string) (bool, error) {
	m.checks.Add(1)
	return m.MemoryMembership.IsMember(ctx, userID, room)
}

// rawClient is a socket.io client on a bare WebSocket, for tests that look
// at packets.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
	sid  string
}

func dialRaw(t *testing.T, url, auth string) *rawClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	c := &rawClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.Close() })
	c.next("0") // the Engine.IO open packet
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40"+auth)); err != nil {
		t.Fatal(err)
	}
	var connected struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(c.next("40"), "40")), &connected); err != nil || connected.SID == "" {
		t.Fatalf("CONNECT answer without a sid: %v", err)
	}
	c.sid = connected.SID
	return c
}

// next returns the next packet that starts with prefix, skipping others.
func (c *rawClient) next(prefix string) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for a packet starting with %q: %v", prefix, err)
		}
		if strings.HasPrefix(string(b), prefix) {
			return string(b)
		}
	}
}

// request emits event with arg and acknowledgement id, and returns the ack.
func (c *rawClient) request(id int, event string, arg any) map[string]any {
	c.t.Helper()
	body, err := json.Marshal([]any{event, arg})
	if err != nil {
		c.t.Fatal(err)
	}
	n := strconv.Itoa(id)
	if err := c.conn.WriteMessage(websocket.TextMessage, append([]byte("42"+n), body...)); err != nil {
		c.t.Fatal(err)
	}
	ack := strings.TrimPrefix(c.next("43"+n+"["), "43"+n)
	var args []map[string]any
	if err := json.Unmarshal([]byte(ack), &args); err != nil || len(args) != 1 {
		c.t.Fatalf("ack %s: %v", ack, err)
	}
	return args[0]
}

func errorCode(ack map[string]any) string {
	e, _ := ack["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// A socket in the room sends without a membership check in the store (a
// Redis round trip in cluster mode); a socket outside it still asks the
// store, and its own socket id, a room it is in, is no chat room.
func TestMessageFromASocketInTheRoomSkipsTheStoreCheck(t *testing.T) {
	membership := &countingMembership{MemoryMembership: rooms.NewMemoryMembership()}
	chat, err := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership: membership, Presence: rooms.NewMemoryPresence(),
		History: rooms.NewMemoryHistory(10), Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{}, Deps{Chat: chat})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	defer s.Close()

	c := dialRaw(t, ts.URL, `{"userId":"alice"}`)
	if ack := c.request(1, "join", map[string]any{"room": "r"}); ack["ok"] != true {
		t.Fatalf("join: %v", ack)
	}
	before := membership.checks.Load()
	if ack := c.request(2, "message", map[string]any{"room": "r", "text": "hi"}); ack["ok"] != true {
		t.Fatalf("message to a joined room: %v", ack)
	}
	if n := membership.checks.Load() - before; n != 0 {
		t.Errorf("a message from a socket in the room checked the store %d times, want 0", n)
	}

	if ack := c.request(3, "message", map[string]any{"room": "elsewhere", "text": "hi"}); errorCode(ack) != "forbidden" {
		t.Errorf("message to a room never joined: %v, want forbidden", ack)
	}
	if n := membership.checks.Load() - before; n != 1 {
		t.Errorf("a message from outside the room checked the store %d times, want 1", n)
	}
	if ack := c.request(4, "message", map[string]any{"room": c.sid, "text": "hi"}); errorCode(ack) != "forbidden" {
		t.Errorf("message to the socket's own id: %v, want forbidden", ack)
	}

	if ack := c.request(5, "leave", map[string]any{"room": "r"}); ack["ok"] != true {
		t.Fatalf("leave: %v", ack)
	}
	if ack := c.request(6, "message", map[string]any{"room": "r", "text": "gone"}); errorCode(ack) != "forbidden" {
		t.Errorf("message after leave: %v, want forbidden", ack)
	}
}
