package sioadapter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/server"
)

var _ server.MembershipSync = (*RedisAdapter)(nil)

// adapterUserOpts targets every socket in a user's room.
func adapterUserOpts(room string) *socket.BroadcastOptions {
	return &socket.BroadcastOptions{Rooms: types.NewSet(socket.Room(room))}
}

// adapterEventsBefore returns the names of the events cl got before the
// fence event carrying n.
func adapterEventsBefore(cl *adapterTestClient, n int) []string {
	cl.t.Helper()
	var names []string
	for {
		ev := cl.next()
		if len(ev) == 2 && ev[0] == "fence" {
			if got, _ := ev[1].(float64); int(got) == n {
				return names
			}
		}
		names = append(names, adapterEventNames([][]any{ev})[0])
	}
}

// A message published right after AddSocketsWait returns, by an instance
// that has no member of the room, reaches the user's sockets on the
// instance that asked and on another one: both have put them in the room
// and have their subscription to the fresh room's channel in effect. The
// fence that instance c publishes right behind the message tells a missed
// message apart without waiting for a timeout.
func TestAdapterAddSocketsWait(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-join-wait"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	c := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 3, a, b, c)
	onA := dialAdapterTestClient(t, a.url, map[string]any{"userId": "alice", "rooms": []string{"user:alice"}})
	onB := dialAdapterTestClient(t, b.url, map[string]any{"userId": "alice", "rooms": []string{"user:alice"}})
	other := dialAdapterTestClient(t, b.url, map[string]any{"userId": "bob", "rooms": []string{"user:bob"}})
	for _, cl := range []*adapterTestClient{onA, onB, other} {
		cl.waitReady()
	}

	for i := range 50 {
		room := fmt.Sprintf("fresh-%d", i)
		ctx, cancel := context.WithTimeout(t.Context(), adapterTestTimeout)
		err := a.adapter().AddSocketsWait(ctx, adapterUserOpts("user:alice"), []socket.Room{socket.Room(room)})
		cancel()
		if err != nil {
			t.Fatalf("round %d: AddSocketsWait: %v", i, err)
		}
		_ = c.io.To(socket.Room(room)).Emit("msg", i)
		_ = c.io.Emit("fence", i)
		for _, cl := range []*adapterTestClient{onA, onB} {
			if got := adapterEventsBefore(cl, i); !slices.Equal(got, []string{"msg"}) {
				t.Fatalf("round %d: alice's socket %s got %v before the fence, want [msg]", i, cl.sid, got)
			}
		}
		if got := adapterEventsBefore(other, i); len(got) != 0 {
			t.Fatalf("round %d: bob's socket got %v", i, got)
		}
	}
}

// After DelSocketsWait returns, a message that another instance publishes
// to the room no longer reaches the sockets that left it, on any instance.
func TestAdapterDelSocketsWait(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-leave-wait"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	c := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 3, a, b, c)
	onA := dialAdapterTestClient(t, a.url, map[string]any{"userId": "alice", "rooms": []string{"user:alice"}})
	onB := dialAdapterTestClient(t, b.url, map[string]any{"userId": "alice", "rooms": []string{"user:alice"}})
	// bob stays in every room, so that instance b keeps its subscriptions
	// and a late leave would show.
	bob := dialAdapterTestClient(t, b.url, map[string]any{"userId": "bob", "rooms": []string{"user:bob"}})
	for _, cl := range []*adapterTestClient{onA, onB, bob} {
		cl.waitReady()
	}
	ctx := t.Context()
	for i := range 20 {
		rooms := []socket.Room{socket.Room(fmt.Sprintf("room-%d", i))}
		if err := a.adapter().AddSocketsWait(ctx, adapterUserOpts("user:alice"), rooms); err != nil {
			t.Fatalf("round %d: AddSocketsWait: %v", i, err)
		}
		if err := a.adapter().AddSocketsWait(ctx, adapterUserOpts("user:bob"), rooms); err != nil {
			t.Fatalf("round %d: AddSocketsWait: %v", i, err)
		}
		if err := b.adapter().DelSocketsWait(ctx, adapterUserOpts("user:alice"), rooms); err != nil {
			t.Fatalf("round %d: DelSocketsWait: %v", i, err)
		}
		_ = c.io.To(rooms[0]).Emit("msg", i)
		_ = c.io.Emit("fence", i)
		for _, cl := range []*adapterTestClient{onA, onB} {
			if got := adapterEventsBefore(cl, i); len(got) != 0 {
				t.Fatalf("round %d: alice's socket %s got %v after leaving", i, cl.sid, got)
			}
		}
		if got := adapterEventsBefore(bob, i); !slices.Equal(got, []string{"msg"}) {
			t.Fatalf("round %d: bob got %v, want [msg]", i, got)
		}
	}
}

// An instance that does not answer makes the Wait variants fail after
// RequestTimeout with an error that names it; the live instances have
// applied the change all the same.
func TestAdapterMembershipWaitNamesSilentInstance(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-join-ghost"
	opts := adapterTestOptions(t, prefix)
	opts.RequestTimeout = 300 * time.Millisecond
	opts.HeartbeatTimeout = time.Minute // the ghost stays counted
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: opts})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: opts})
	waitNodes(t, 2, a, b)
	onB := dialAdapterTestClient(t, b.url, map[string]any{"userId": "alice", "rooms": []string{"user:alice"}})
	onB.waitReady()

	ghost, err := encodeWire(&wireMessage{Kind: kindHeartbeat, From: "ghost-7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client().Publish(t.Context(), prefix+":bus", ghost).Err(); err != nil {
		t.Fatal(err)
	}
	adapterWaitFor(t, "the ghost to be counted", func() bool { return a.builder.Nodes() == 3 })

	rooms := []socket.Room{"late"}
	for name, call := range map[string]func() error{
		"AddSocketsWait": func() error {
			return a.adapter().AddSocketsWait(t.Context(), adapterUserOpts("user:alice"), rooms)
		},
		"DelSocketsWait": func() error {
			return a.adapter().DelSocketsWait(t.Context(), adapterUserOpts("user:alice"), rooms)
		},
	} {
		err := call()
		if !errors.Is(err, ErrRequestTimeout) || !strings.Contains(err.Error(), "ghost-7") || strings.Contains(err.Error(), b.builder.InstanceID()) {
			t.Errorf("%s with a silent instance: err = %v, want ErrRequestTimeout naming ghost-7 only", name, err)
		}
	}
	// A context that ends first ends the wait too.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.adapter().AddSocketsWait(ctx, adapterUserOpts("user:alice"), rooms); !errors.Is(err, context.Canceled) {
		t.Errorf("AddSocketsWait with a cancelled context: err = %v, want context.Canceled", err)
	}
	// b got that last join but its answer did not count: wait for Redis
	// to list its subscription before publishing.
	waitSubscribers(t, r.Client(), prefix+":room:/:late", 1)
	_ = a.io.To("late").Emit("msg")
	_ = a.io.Emit("fence", 0)
	if got := adapterEventsBefore(onB, 0); !slices.Equal(got, []string{"msg"}) {
		t.Errorf("alice's socket on the live instance got %v, want [msg]", got)
	}
}

// WaitSubscribed returns once another instance's broadcast to a room that a
// local socket just joined reaches it, and at once for rooms without a
// local socket.
func TestAdapterWaitSubscribed(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-wait-sub"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 2, a, b)
	cl := dialAdapterTestClient(t, a.url, map[string]any{"userId": "alice"})
	cl.waitReady()
	sock, ok := a.io.Of("/", nil).Sockets().Load(socket.SocketId(cl.sid))
	if !ok {
		t.Fatal("the socket is not on instance a")
	}
	for i := range 20 {
		room := socket.Room(fmt.Sprintf("own-%d", i))
		sock.Join(room)
		if err := a.adapter().WaitSubscribed(t.Context(), []socket.Room{room, "nobody-here"}); err != nil {
			t.Fatalf("round %d: WaitSubscribed: %v", i, err)
		}
		_ = b.io.To(room).Emit("msg", i)
		_ = b.io.Emit("fence", i)
		if got := adapterEventsBefore(cl, i); !slices.Equal(got, []string{"msg"}) {
			t.Fatalf("round %d: the socket got %v before the fence, want [msg]", i, got)
		}
	}
	if n, err := r.Client().PubSubNumSub(t.Context(), prefix+":room:/:nobody-here").Result(); err != nil || n[prefix+":room:/:nobody-here"] != 0 {
		t.Errorf("a room without a local socket was subscribed: %v, %v", n, err)
	}
	_ = a.builder.Close()
	if err := a.adapter().WaitSubscribed(t.Context(), []socket.Room{"own-0"}); !errors.Is(err, ErrAdapterClosed) {
		t.Errorf("WaitSubscribed after Close: err = %v, want ErrAdapterClosed", err)
	}
}
