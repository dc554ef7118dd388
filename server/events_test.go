package server

import (
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/rooms"
)

// recordingSink is an events.Sink that keeps what the server publishes.
type recordingSink struct {
	mu  sync.Mutex
	got []recorded
}

type recorded struct {
	typ  string
	data map[string]any
}

func (r *recordingSink) Publish(typ string, data any) {
	m, _ := data.(map[string]any)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, recorded{typ, m})
}

func (r *recordingSink) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, e := range r.got {
		out[i] = e.typ
	}
	return out
}

func (r *recordingSink) last() recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// TestEventsPublishedOncePerChange: each change publishes its event once;
// a second tab, a re-join and a retried send publish nothing.
func TestEventsPublishedOncePerChange(t *testing.T) {
	chat, err := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership: rooms.NewMemoryMembership(), Presence: rooms.NewMemoryPresence(),
		History: rooms.NewMemoryHistory(10), Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	s, err := New(Config{}, Deps{Chat: chat, Events: sink})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); _ = s.Close() })

	want := func(types ...string) {
		t.Helper()
		testkit.Eventually(t, 5*time.Second, func() bool { return slices.Equal(sink.types(), types) },
			"events %v (got %v)", types, sink.types())
	}
	dial := func(user string) *testkit.Client {
		c := testkit.Connect(t, ts.URL, testkit.Options{Auth: map[string]string{"userId": user, "name": user + "!"}})
		sessionRooms(c)
		return c
	}
	a1 := dial("alice")
	want("user.online")
	a2 := dial("alice")
	a1.MustOK("join", map[string]string{"room": "r"})
	a2.MustOK("join", map[string]string{"room": "r"})
	want("user.online", "room.occupied", "member.joined")
	if e := sink.last(); e.data["room"] != "r" || e.data["userId"] != "alice" || e.data["name"] != "alice!" {
		t.Fatalf("member.joined data %v", e.data)
	}
	b := dial("bob")
	b.MustOK("join", map[string]string{"room": "r"})
	a1.MustOK("message", map[string]string{"room": "r", "text": "hi", "clientMsgId": "c1"})
	a2.MustOK("message", map[string]string{"room": "r", "text": "hi", "clientMsgId": "c1"}) // a retry
	want("user.online", "room.occupied", "member.joined", "user.online", "member.joined", "message.created")
	if e := sink.last(); e.data["text"] != "hi" || e.data["source"] != "socket" || e.data["id"] == "" {
		t.Fatalf("message.created data %v", e.data)
	}
	b.MustOK("leave", map[string]string{"room": "r"})
	a1.MustOK("leave", map[string]string{"room": "r"})
	a2.MustOK("leave", map[string]string{"room": "r"})
	a1.Close()
	<-a1.Done()
	b.Close()
	a2.Close()
	testkit.Eventually(t, 5*time.Second, func() bool { return len(sink.types()) == 11 }, "11 events (got %v)", sink.types())
	got := sink.types()
	if !slices.Equal(got[6:9], []string{"member.left", "member.left", "room.vacated"}) ||
		got[9] != events.UserOffline || got[10] != events.UserOffline {
		t.Fatalf("events after the leaves %v", got[6:])
	}
	sink.mu.Lock()
	offline := slices.Clone(sink.got[9:])
	sink.mu.Unlock()
	for _, e := range offline {
		if e.data["reason"] != "disconnected" {
			t.Errorf("user.offline data %v, want reason disconnected", e.data)
		}
	}
}
