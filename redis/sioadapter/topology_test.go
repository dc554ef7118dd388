package sioadapter

import (
	"context"
	"fmt"
	"slices"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/redis"
	"github.com/chatd/chatd/rooms"
)

// TestAdapterRedisCluster runs the adapter over a Redis Cluster of three
// masters.
func TestAdapterRedisCluster(t *testing.T) {
	rc := testkit.StartRedisCluster(t, 3)
	adapterTopologyScenario(t, "t-topo-cluster", true, func() goredis.UniversalClient { return rc.Client() })
}

// TestAdapterRedisSentinel checks that the adapter and the stores keep
// working when Sentinel promotes the replica: the instances stay ready, a
// broadcast crosses them both ways, and what the stores held before is
// there after.
func TestAdapterRedisSentinel(t *testing.T) {
	s := testkit.StartSentinel(t)
	inst := adapterTopologyScenario(t, "t-topo-sentinel", false, s.Client)
	ctx := t.Context()
	client := s.Client()
	membership, err := redis.NewRedisMembership(client, redis.RedisMembershipOptions{Prefix: "t-topo-sentinel-stores"})
	if err != nil {
		t.Fatal(err)
	}
	history, err := redis.NewRedisHistory(client, redis.RedisHistoryOptions{Prefix: "t-topo-sentinel-stores", Size: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := membership.Join(ctx, "ann", "lobby", 10); err != nil {
		t.Fatal(err)
	}
	before, err := history.Append(ctx, rooms.Message{Room: "lobby", UserID: "ann", Name: "Ann", Text: "before", TS: 1})
	if err != nil {
		t.Fatal(err)
	}

	s.Failover(t)

	// Both adapters move their subscription to the new master (go-redis
	// moves only the command connections; the adapter notices that its
	// own heartbeats stop coming back) and are ready again.
	newMaster := s.Replica.Client()
	bus := "t-topo-sentinel:bus"
	adapterWaitFor(t, "both instances to subscribe on the new master", func() bool {
		n, err := newMaster.PubSubNumSub(ctx, bus).Result()
		return err == nil && n[bus] == 2
	})
	waitNodes(t, 2, inst.a, inst.b)
	carol := dialAdapterTestClient(t, inst.a.url, map[string]any{"userId": "carol", "rooms": []string{"r"}})
	carol.waitReady()
	topologyWaitSubscribed(t, inst.a, "r")
	_ = inst.a.io.To("r").Emit("after-failover", "from A")
	_ = inst.a.io.Emit("fence", 100)
	if got := topologyEventsBefore(inst.bob, 100); !slices.Equal(got, []string{"after-failover"}) {
		t.Fatalf("after the failover, bob on B got %v from A, want [after-failover]", got)
	}
	if got := topologyEventsBefore(carol, 100); !slices.Equal(got, []string{"after-failover"}) {
		t.Fatalf("carol got %v from A, want [after-failover]", got)
	}
	_ = inst.b.io.To("r").Emit("after-failover", "from B")
	_ = inst.b.io.Emit("fence", 101)
	if got := topologyEventsBefore(carol, 101); !slices.Equal(got, []string{"after-failover"}) {
		t.Fatalf("after the failover, carol on A got %v from B, want [after-failover]", got)
	}

	// The stores read what was written before and write on the new
	// master.
	if list, err := membership.Rooms(ctx, "ann"); err != nil || !slices.Equal(list, []string{"lobby"}) {
		t.Fatalf("after the failover ann's rooms are %v, %v; want [lobby]", list, err)
	}
	after, err := history.Append(ctx, rooms.Message{Room: "lobby", UserID: "ann", Name: "Ann", Text: "after", TS: 2})
	if err != nil {
		t.Fatalf("Append after the failover: %v", err)
	}
	page, err := history.Page(ctx, "lobby", rooms.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Messages {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{before.ID, after.ID}) {
		t.Fatalf("after the failover the history holds %v, want [%s %s]", ids, before.ID, after.ID)
	}
}

// topologyEventsBefore returns the names of the events cl got before the
// fence event carrying n (with connection state recovery on, events carry
// their offset as a last argument).
func topologyEventsBefore(cl *adapterTestClient, n int) []string {
	cl.t.Helper()
	var names []string
	for {
		ev := cl.next()
		if len(ev) >= 2 && ev[0] == "fence" {
			if got, _ := ev[1].(float64); int(got) == n {
				return names
			}
		}
		names = append(names, adapterEventNames([][]any{ev})[0])
	}
}

// topologyWaitSubscribed waits until node's subscription to the channels of
// rooms is confirmed.
func topologyWaitSubscribed(t *testing.T, node *adapterTestNode, rooms ...socket.Room) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), adapterTestTimeout)
	defer cancel()
	if err := node.adapter().WaitSubscribed(ctx, rooms); err != nil {
		t.Fatalf("WaitSubscribed(%v): %v", rooms, err)
	}
}

// adapterTopologyScenario runs two instances, each with a client of its own
// from newClient, over whatever Redis topology the clients reach, and
// checks what chatd relies on: broadcasts cross instances exactly once and in
// the order they were sent, whether they travel on a room's channel or on the
// bus; fetchSockets sees both instances; AddSocketsWait makes a remote
// socket join a room in time for the next broadcast; and a dropped client
// resumes its session, with the packets it missed, on the other instance.
// It returns the two instances and bob, a client on the second one in room r.
//
// With sharded set (Redis Cluster), one instance's messages keep their
// order per room only, not across channels: each fence then goes to a room
// of the client that waits for it, and a broadcast to everyone is not used
// as one.
func adapterTopologyScenario(t *testing.T, prefix string, sharded bool, newClient func() goredis.UniversalClient) topologyInstances {
	t.Helper()
	// fence emits the fence event carrying n from node, after what it sent
	// before to room.
	fence := func(node *adapterTestNode, room socket.Room, n int) {
		if sharded {
			_ = node.io.To(room).Emit("fence", n)
			return
		}
		_ = node.io.Emit("fence", n)
	}
	a := newAdapterTestNode(t, newClient(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
	b := newAdapterTestNode(t, newClient(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
	waitNodes(t, 2, a, b)

	alice := dialAdapterTestClient(t, a.url, map[string]any{"userId": "alice", "rooms": []string{"r", "user:alice"}})
	bob := dialAdapterTestClient(t, b.url, map[string]any{"userId": "bob", "rooms": []string{"r", "user:bob"}})
	alice.waitReady()
	bob.waitReady()
	topologyWaitSubscribed(t, a, "r", "user:alice")
	topologyWaitSubscribed(t, b, "r", "user:bob")

	// Broadcasts from A, most to room r's channel, every third to two rooms
	// (the bus): the remote member gets them all, once, in order (on Redis
	// Cluster: in order on each channel).
	const n = 60
	for i := range n {
		if i%3 == 2 {
			_ = a.io.To("r", "user:bob").Emit("m", i)
		} else {
			_ = a.io.To("r").Emit("m", i)
		}
	}
	fence(a, "r", 0)
	if sharded {
		_ = a.io.To("r", "user:bob").Emit("fence", 0) // the bus's
	}
	for _, cl := range []*adapterTestClient{alice, bob} {
		var got []int
		fences := 1
		if sharded {
			fences = 2
		}
		for fences > 0 {
			ev := cl.next()
			if ev[0] == "fence" {
				fences--
				continue
			}
			if ev[0] != "m" {
				t.Fatalf("client %s got %v", cl.sid, ev)
			}
			i, _ := ev[1].(float64)
			got = append(got, int(i))
		}
		if sharded {
			// Each channel keeps its order; the two interleave freely.
			var room, bus []int
			for _, i := range got {
				if i%3 == 2 {
					bus = append(bus, i)
				} else {
					room = append(room, i)
				}
			}
			if !slices.IsSorted(room) || !slices.IsSorted(bus) {
				t.Fatalf("client %s got %v; want the room's and the bus's messages each in order", cl.sid, got)
			}
			slices.Sort(got)
		}
		if len(got) != n || !slices.IsSorted(got) || got[0] != 0 || got[n-1] != n-1 {
			t.Fatalf("client %s got %v; want 0 to %d, each once, in order", cl.sid, got, n-1)
		}
	}

	// Requests and their answers (bus and instance channels).
	if socks, err := a.fetch(a.all()); err != nil || len(socks) != 2 {
		t.Fatalf("fetchSockets from A = %d sockets, %v; want alice's and bob's", len(socks), err)
	}

	// socketsJoin across instances, for a room no instance has yet.
	for i := range 10 {
		room := socket.Room(fmt.Sprintf("fresh-%d", i))
		ctx, cancel := context.WithTimeout(t.Context(), adapterTestTimeout)
		err := a.adapter().AddSocketsWait(ctx, adapterUserOpts("user:bob"), []socket.Room{room})
		cancel()
		if err != nil {
			t.Fatalf("round %d: AddSocketsWait: %v", i, err)
		}
		_ = a.io.To(room).Emit("msg", i)
		if sharded {
			fence(a, room, i)
			fence(a, "user:alice", i)
		} else {
			_ = a.io.Emit("fence", i)
		}
		if got := topologyEventsBefore(bob, i); !slices.Equal(got, []string{"msg"}) {
			t.Fatalf("round %d: bob (joined remotely) got %v before the fence, want [msg]", i, got)
		}
		if got := topologyEventsBefore(alice, i); len(got) != 0 {
			t.Fatalf("round %d: alice got %v", i, got)
		}
	}

	// Connection state recovery: alice drops on A and resumes on B.
	_ = a.io.To("user:alice").Emit("sync")
	alice.until("sync")
	offset := alice.offset()
	alice.drop()
	mon := newClient()
	adapterWaitFor(t, "alice's session to be persisted", func() bool {
		n, err := mon.Exists(context.Background(), prefix+":session:"+alice.pid).Result()
		return err == nil && n == 1
	})
	_ = b.io.To("r").Emit("missed", 1)
	_ = a.io.To("r").Emit("missed", 2)
	_ = a.io.To("user:bob").Emit("not-for-alice")
	// bob got all three (A's two in order), so they are recorded.
	if sharded {
		var got []string
		for range 3 {
			got = append(got, adapterEventNames([][]any{bob.next()})[0])
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"missed", "missed", "not-for-alice"}) {
			t.Fatalf("bob got %v, want missed twice and not-for-alice", got)
		}
	} else if got := adapterEventNames(bob.until("not-for-alice")); !slices.Equal(got, []string{"missed", "missed"}) {
		t.Fatalf("bob got %v, want [missed missed]", got)
	}
	resumed := dialAdapterTestClient(t, b.url, map[string]any{"pid": alice.pid, "offset": offset})
	if resumed.sid != alice.sid {
		t.Fatalf("alice's socket resumed as %q on B, want her old id %q", resumed.sid, alice.sid)
	}
	missed := resumed.until("ready")
	if names := adapterEventNames(missed); !slices.Equal(names, []string{"missed", "missed"}) {
		t.Fatalf("replayed %v, want [missed missed]", names)
	}
	if missed[0][1] != float64(1) || missed[1][1] != float64(2) {
		t.Fatalf("replayed %v, want missed 1 then missed 2", missed)
	}
	topologyWaitSubscribed(t, b, "r", "user:alice")
	_ = a.io.To("r").Emit("live")
	fence(a, "r", -1)
	if got := topologyEventsBefore(resumed, -1); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("after resuming on B, alice got %v from A, want [live]", got)
	}
	if got := topologyEventsBefore(bob, -1); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("bob got %v from A, want [live]", got)
	}
	return topologyInstances{a: a, b: b, bob: bob}
}

// topologyInstances are what adapterTopologyScenario leaves running.
type topologyInstances struct {
	a, b *adapterTestNode
	bob  *adapterTestClient // on b, in room r
}
