package server

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/rooms"
)

// gatedMembership can hold one Join after it has stored, or one Rooms after
// it has read, until the test lets it go: the windows in which another
// tab's join or leave used to slip between a store change and the matching
// socket change.
type gatedMembership struct {
	*rooms.MemoryMembership
	gateJoin, gateRooms atomic.Bool
	joinStored, joinGo  chan struct{}
	roomsRead, roomsGo  chan struct{}
}

func newGatedMembership() *gatedMembership {
	return &gatedMembership{
		MemoryMembership: rooms.NewMemoryMembership(),
		joinStored:       make(chan struct{}), joinGo: make(chan struct{}),
		roomsRead: make(chan struct{}), roomsGo: make(chan struct{}),
	}
}

func (m *gatedMembership) Join(ctx context.Context, userID, room string, maxRooms int) (bool, error) {
	c, err := m.JoinCounted(ctx, userID, room, maxRooms)
	return c.Member, err
}

// JoinCounted is the join rooms.Chat calls (the store is rooms.RoomCounting).
func (m *gatedMembership) JoinCounted(ctx context.Context, userID, room string, maxRooms int) (rooms.Change, error) {
	c, err := m.MemoryMembership.JoinCounted(ctx, userID, room, maxRooms)
	if m.gateJoin.CompareAndSwap(true, false) {
		close(m.joinStored)
		<-m.joinGo
	}
	return c, err
}

func (m *gatedMembership) Rooms(ctx context.Context, userID string) ([]string, error) {
	rs, err := m.MemoryMembership.Rooms(ctx, userID)
	if m.gateRooms.CompareAndSwap(true, false) {
		close(m.roomsRead)
		<-m.roomsGo
	}
	return rs, err
}

// serveStores serves a Server on membership and presence, with in-memory
// history and idempotency, until the test ends; it returns the server, its
// chat and its URL.
func serveStores(t *testing.T, membership rooms.Membership, presence rooms.Presence) (*Server, *rooms.Chat, string) {
	t.Helper()
	chat, err := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership: membership, Presence: presence,
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
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close()
	})
	return s, chat, ts.URL
}

func startGated(t *testing.T, m *gatedMembership) (*Server, string) {
	t.Helper()
	s, _, url := serveStores(t, m, rooms.NewMemoryPresence())
	return s, url
}

// dialRaw connects as the dev-mode user; it returns once the CONNECT is
// answered, before the server has set the socket up.
func dialRaw(t *testing.T, url, userID string) *testkit.Client {
	t.Helper()
	return testkit.Connect(t, url, testkit.Options{Auth: map[string]string{"userId": userID}})
}

// sessionRooms waits for the session event and returns its rooms.
func sessionRooms(c *testkit.Client) []string {
	var s struct {
		Rooms []string `json:"rooms"`
	}
	c.EventInto("session", &s)
	return s.Rooms
}

// send emits a request on a room without waiting for its answer.
func send(c *testkit.Client, event, room string) int {
	return c.Emit(event, map[string]string{"room": room})
}

// mustAck waits for the answer to request id and fails unless it is ok.
func mustAck(t *testing.T, c *testkit.Client, id int) {
	t.Helper()
	if a := c.Ack(id); !a.OK {
		t.Fatalf("request %d answered %s", id, a.Raw)
	}
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting until %s", what)
	}
}

func socketsIn(s *Server, room string) int {
	ids, ok := s.nsp.Adapter().Rooms().Load(socket.Room(room))
	if !ok {
		return 0
	}
	return ids.Len()
}

// Tab A joins and tab B leaves at once: A's join is stored, B's leave is
// stored and applied to the sockets, and only then does A put the user's
// sockets in the room. The store says the user left; so must the sockets,
// or both tabs keep receiving a room their user is not in.
func TestJoinAndLeaveRacingFromTwoTabsEndAsTheStoreDoes(t *testing.T) {
	m := newGatedMembership()
	s, url := startGated(t, m)
	a, b := dialRaw(t, url, "alice"), dialRaw(t, url, "alice")
	sessionRooms(a)
	sessionRooms(b)

	m.gateJoin.Store(true)
	join := send(a, "join", "r")
	wait(t, m.joinStored, "the join is stored")
	mustAck(t, b, send(b, "leave", "r"))
	close(m.joinGo)
	mustAck(t, a, join)

	if member, _ := m.IsMember(context.Background(), "alice", "r"); member {
		t.Fatal("the store has alice in r; the leave was stored last")
	}
	if n := socketsIn(s, "r"); n != 0 {
		t.Fatalf("%d of alice's sockets are in r after her leave was stored last, want 0", n)
	}
}

// A leave from one tab lands while another tab's socket is being set up,
// after the setup read the user's rooms and before it joined them.
func TestALeaveDuringASocketsSetupIsNotMissed(t *testing.T) {
	m := newGatedMembership()
	if _, err := m.MemoryMembership.Join(context.Background(), "alice", "r", 10); err != nil {
		t.Fatal(err)
	}
	s, url := startGated(t, m)
	a := dialRaw(t, url, "alice")
	if got := sessionRooms(a); len(got) != 1 || got[0] != "r" {
		t.Fatalf("first tab's session rooms %v, want [r]", got)
	}

	m.gateRooms.Store(true)
	b := dialRaw(t, url, "alice")
	wait(t, m.roomsRead, "the new socket's setup read the rooms")
	mustAck(t, a, send(a, "leave", "r"))
	close(m.roomsGo)
	if got := sessionRooms(b); len(got) != 0 {
		t.Errorf("second tab's session rooms %v after the leave, want none", got)
	}
	if n := socketsIn(s, "r"); n != 0 {
		t.Fatalf("%d of alice's sockets are in r after she left it, want 0", n)
	}
}
