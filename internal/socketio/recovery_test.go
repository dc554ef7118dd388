package socketio

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// recoveryClock is a settable clock.
type recoveryClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *recoveryClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *recoveryClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newRecoveryAdapter returns the single-instance recovery adapter of a
// socket.io server with a maximum disconnection duration of one minute.
func newRecoveryAdapter(t *testing.T, maxPackets, bufferLen int) (*recoveryAdapter, *recoveryClock) {
	t.Helper()
	clock := &recoveryClock{t: time.Unix(1_700_000_000, 0)}
	opts := socket.DefaultServerOptions()
	csr := socket.DefaultConnectionStateRecovery()
	csr.SetMaxDisconnectionDuration(time.Minute.Milliseconds())
	opts.SetConnectionStateRecovery(csr)
	opts.SetAdapter(&RecoveryAdapterBuilder{MaxPackets: maxPackets, BufferLen: bufferLen, now: clock.now})
	io := socket.NewServer(nil, opts)
	t.Cleanup(func() { io.Close(nil) })
	a, ok := io.Of("/", nil).Adapter().(*recoveryAdapter)
	if !ok {
		t.Fatalf("adapter is %T, want *recoveryAdapter", io.Of("/", nil).Adapter())
	}
	return a, clock
}

func roomSetOf(names ...string) *types.Set[socket.Room] {
	s := types.NewSet[socket.Room]()
	for _, n := range names {
		s.Add(socket.Room(n))
	}
	return s
}

// emit broadcasts event to rooms (none: everyone) except except and returns
// the offset it was given ("" when it was not recorded).
func recEmit(a *recoveryAdapter, event string, to, except []string, flags socket.BroadcastFlags) string {
	p := &parser.Packet{Type: parser.EVENT, Data: []any{event}}
	a.Broadcast(p, &socket.BroadcastOptions{Rooms: roomSetOf(to...), Except: roomSetOf(except...), Flags: &flags})
	data := p.Data.([]any)
	if len(data) < 2 {
		return ""
	}
	off, _ := data[len(data)-1].(string)
	return off
}

func recPersist(a *recoveryAdapter, pid string, in ...string) {
	a.PersistSession(&socket.SessionToPersist{
		Sid:   socket.SocketId("sid-" + pid),
		Pid:   socket.PrivateSessionId(pid),
		Rooms: roomSetOf(append([]string{"sid-" + pid}, in...)...),
		Data:  map[string]any{"userId": "u-" + pid},
	})
}

func recMissed(s *socket.Session) []string {
	var out []string
	for _, p := range s.MissedPackets {
		out = append(out, p.([]any)[0].(string))
	}
	return out
}

func TestRecoveryAdapterReplaysWhatTheSocketMissed(t *testing.T) {
	a, _ := newRecoveryAdapter(t, 100, 100)
	off := recEmit(a, "seen", []string{"r1"}, nil, socket.BroadcastFlags{})
	recPersist(a, "p1", "r1")
	recEmit(a, "a", []string{"r1"}, nil, socket.BroadcastFlags{})
	recEmit(a, "other-room", []string{"r2"}, nil, socket.BroadcastFlags{})
	recEmit(a, "excepted", []string{"r1"}, []string{"sid-p1"}, socket.BroadcastFlags{})
	recEmit(a, "direct", []string{"sid-p1"}, nil, socket.BroadcastFlags{})
	volatile := socket.BroadcastFlags{}
	volatile.Volatile = true
	if got := recEmit(a, "typing", []string{"r1"}, nil, volatile); got != "" {
		t.Errorf("a volatile packet was recorded with offset %q", got)
	}
	recEmit(a, "everyone", nil, nil, socket.BroadcastFlags{})
	ack := &parser.Packet{Type: parser.EVENT, Data: []any{"with-ack"}, Id: new(uint64)}
	a.Broadcast(ack, &socket.BroadcastOptions{Rooms: roomSetOf("r1"), Except: roomSetOf(), Flags: &socket.BroadcastFlags{}})

	s, err := a.RestoreSession("p1", off)
	if err != nil || s == nil {
		t.Fatalf("RestoreSession = %v, %v", s, err)
	}
	if got, want := recMissed(s), []string{"a", "direct", "everyone"}; !slices.Equal(got, want) {
		t.Errorf("missed %v, want %v", got, want)
	}
	if s.Sid != "sid-p1" || !s.Rooms.Has("r1") || s.Data.(map[string]any)["userId"] != "u-p1" {
		t.Errorf("session = %+v", s.SessionToPersist)
	}
	var offsets []uint64
	for _, p := range s.MissedPackets {
		args := p.([]any)
		n, err := strconv.ParseUint(args[len(args)-1].(string), 10, 64)
		if err != nil {
			t.Fatalf("replayed packet %v does not end with its offset", args)
		}
		offsets = append(offsets, n)
	}
	if !slices.IsSorted(offsets) {
		t.Errorf("replayed offsets %v are not in order", offsets)
	}
	if again, _ := a.RestoreSession("p1", off); again != nil {
		t.Error("the session restored twice")
	}
}

func TestRecoveryAdapterRefusals(t *testing.T) {
	t.Run("forged or malformed offset leaves the session", func(t *testing.T) {
		a, _ := newRecoveryAdapter(t, 100, 100)
		off := recEmit(a, "seen", nil, nil, socket.BroadcastFlags{})
		recPersist(a, "owner")
		recEmit(a, "missed", nil, nil, socket.BroadcastFlags{})
		for _, bad := range []string{"", "x", "../../x", "-1", "+1", "01", "1.0", "99", "18446744073709551616", "0"} {
			if s, err := a.RestoreSession("owner", bad); s != nil || err != nil {
				t.Errorf("offset %q: %v, %v", bad, s, err)
			}
		}
		if s, _ := a.RestoreSession("unknown", off); s != nil {
			t.Error("an unknown pid restored a session")
		}
		s, _ := a.RestoreSession("owner", off)
		if s == nil || !slices.Equal(recMissed(s), []string{"missed"}) {
			t.Fatalf("the owner's restore after forged attempts = %+v", s)
		}
	})

	t.Run("more than maxPackets", func(t *testing.T) {
		a, _ := newRecoveryAdapter(t, 3, 100)
		off := recEmit(a, "seen", nil, nil, socket.BroadcastFlags{})
		recPersist(a, "many")
		recPersist(a, "enough")
		for range 3 {
			recEmit(a, "x", []string{"elsewhere"}, nil, socket.BroadcastFlags{})
		}
		if s, _ := a.RestoreSession("enough", off); s == nil || len(s.MissedPackets) != 0 {
			t.Errorf("restore with exactly maxPackets packets after the offset = %+v", s)
		}
		recEmit(a, "x", nil, nil, socket.BroadcastFlags{})
		if s, _ := a.RestoreSession("many", off); s != nil {
			t.Errorf("restored with %d packets past maxPackets", len(s.MissedPackets))
		}
	})

	t.Run("offset dropped by the buffer length", func(t *testing.T) {
		a, _ := newRecoveryAdapter(t, 100, 5)
		off := recEmit(a, "seen", nil, nil, socket.BroadcastFlags{})
		recPersist(a, "p")
		for range 5 {
			recEmit(a, "x", nil, nil, socket.BroadcastFlags{})
		}
		if n := len(a.packets); n != 5 {
			t.Errorf("%d packets kept, want 5", n)
		}
		if s, _ := a.RestoreSession("p", off); s != nil {
			t.Error("restored from an offset the buffer dropped")
		}
	})

	t.Run("expired session", func(t *testing.T) {
		a, clock := newRecoveryAdapter(t, 100, 100)
		recPersist(a, "old")
		clock.advance(30 * time.Second)
		off := recEmit(a, "x", nil, nil, socket.BroadcastFlags{})
		recPersist(a, "recent")
		clock.advance(30*time.Second + time.Millisecond)
		if s, _ := a.RestoreSession("old", off); s != nil {
			t.Error("a session dropped longer ago than the maximum disconnection restored")
		}
		if s, _ := a.RestoreSession("recent", off); s == nil {
			t.Error("a session dropped 30 s ago did not restore")
		}
	})

	t.Run("packets older than the maximum disconnection are dropped", func(t *testing.T) {
		a, clock := newRecoveryAdapter(t, 100, 100)
		for range 10 {
			recEmit(a, "old", nil, nil, socket.BroadcastFlags{})
		}
		clock.advance(time.Minute + time.Millisecond)
		recEmit(a, "new", nil, nil, socket.BroadcastFlags{})
		if n := len(a.packets); n != 1 {
			t.Errorf("%d packets kept, want only the recent one", n)
		}
	})
}
