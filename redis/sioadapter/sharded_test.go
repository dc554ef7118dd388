package sioadapter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/testkit"
)

func TestKeySlot(t *testing.T) {
	// Values from CLUSTER KEYSLOT on Redis 7.0.
	for key, want := range map[string]int{
		"":                     0,
		"foo":                  12182,
		"{user1000}.a":         3443,
		"x{a}":                 15495,
		"x{b}":                 3300,
		"x{}y":                 keySlot("x{}y"), // empty tag: the whole name
		"chatd:room:/:{r:a}b}": keySlot("r:a"),
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
	if keySlot("x{}y") == keySlot("") {
		t.Error("an empty hash tag must hash the whole name")
	}
}

// shardRooms are the rooms of the sharded tests: enough that their
// channels spread over every master of a three-master cluster.
func shardRooms(n int) []string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%d", i)
	}
	return rooms
}

// shardPair is two instances on one cluster, and bob on the second in
// every room of rooms.
type shardPair struct {
	a, b  *adapterTestNode
	bob   *adapterTestClient
	rooms []string
}

func newShardPair(t *testing.T, rc *testkit.RedisCluster, prefix string, rooms []string) *shardPair {
	t.Helper()
	a := newAdapterTestNode(t, rc.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, rc.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 2, a, b)
	bob := dialAdapterTestClient(t, b.url, map[string]any{"userId": "bob", "rooms": rooms})
	bob.waitReady()
	list := make([]socket.Room, len(rooms))
	for i, r := range rooms {
		list[i] = socket.Room(r)
	}
	topologyWaitSubscribed(t, b, list...)
	return &shardPair{a: a, b: b, bob: bob, rooms: rooms}
}

// shardSubscribers returns, for every master, how many of channels have a
// sharded subscriber there (PUBSUB SHARDNUMSUB).
func shardSubscribers(t *testing.T, rc *testkit.RedisCluster, channels []string) map[string]int {
	t.Helper()
	out := make(map[string]int)
	for _, n := range rc.Nodes {
		got, err := n.Client().Do(context.Background(), append([]any{"PUBSUB", "SHARDNUMSUB"}, anySlice(channels)...)...).Slice()
		if err != nil {
			t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v", n.Addr(), err)
		}
		for i := 0; i+1 < len(got); i += 2 {
			if c, _ := got[i+1].(int64); c > 0 {
				out[n.Addr()]++
			}
		}
	}
	return out
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// TestAdapterShardedCluster runs the adapter on a Redis Cluster of three
// masters with a replica each, through slot moves, a planned failover and
// a master's crash. The cases share the cluster (one start, a few seconds)
// and run in order, the crash last.
func TestAdapterShardedCluster(t *testing.T) {
	rc := testkit.StartRedisClusterWith(t, testkit.RedisClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	t.Run("rooms spread over the masters", func(t *testing.T) { shardedRoomsSpread(t, rc) })
	t.Run("older build reported", func(t *testing.T) { shardedLegacyPeerLogged(t, rc) })
	t.Run("slot move", func(t *testing.T) { shardedSlotMove(t, rc) })
	t.Run("failover", func(t *testing.T) { shardedFailover(t, rc) })
	t.Run("master crash", func(t *testing.T) { shardedMasterCrash(t, rc) })
}

// shardedRoomsSpread checks that on Redis Cluster the room channels are
// sharded channels spread over the masters, that classic Pub/Sub is not
// used at all, and that broadcasts in many rooms reach the remote member
// once each, in order per room.
func shardedRoomsSpread(t *testing.T, rc *testkit.RedisCluster) {
	rooms := shardRooms(24)
	p := newShardPair(t, rc, "t-shard-spread", rooms)
	ctx := t.Context()

	var channels []string
	for _, r := range rooms {
		channels = append(channels, p.b.builder.roomChannel("/", socket.Room(r)))
	}
	perNode := shardSubscribers(t, rc, channels)
	if len(perNode) < 2 {
		t.Fatalf("room channels subscribed on %v; want them spread over at least two masters", perNode)
	}
	total := 0
	for _, n := range perNode {
		total += n
	}
	if total != len(rooms) {
		t.Fatalf("%d room channels have a subscriber, want %d (each on one master)", total, len(rooms))
	}
	for _, n := range rc.Nodes {
		classic, err := n.Client().PubSubChannels(ctx, "*").Result()
		if err != nil || len(classic) != 0 {
			t.Fatalf("classic channels subscribed on %s: %v, %v; want none", n.Addr(), classic, err)
		}
		if n, err := n.Client().PubSubNumSub(ctx, "t-shard-spread:bus").Result(); err != nil || n["t-shard-spread:bus"] != 0 {
			t.Fatalf("classic bus subscribers: %v, %v", n, err)
		}
	}
	if st := p.b.builder.Stats(); st.SubscriptionConns < 2 || st.Unconfirmed != 0 {
		t.Fatalf("B's stats %+v: want a connection per master serving its channels, none unconfirmed", st)
	}

	const perRoom = 20
	for i := range perRoom {
		for _, r := range rooms {
			_ = p.a.io.To(socket.Room(r)).Emit("m", r, i)
		}
	}
	got := make(map[string][]int)
	for range perRoom * len(rooms) {
		ev := p.bob.next()
		if len(ev) != 3 || ev[0] != "m" {
			t.Fatalf("bob got %v", ev)
		}
		r, _ := ev[1].(string)
		i, _ := ev[2].(float64)
		got[r] = append(got[r], int(i))
	}
	for _, r := range rooms {
		if len(got[r]) != perRoom || !slices.IsSorted(got[r]) || got[r][0] != 0 || got[r][perRoom-1] != perRoom-1 {
			t.Fatalf("bob got %v in %s; want 0 to %d, each once, in order", got[r], r, perRoom-1)
		}
	}

	// Requests and answers travel on the bus partitions and the instance
	// channels.
	if socks, err := p.a.fetch(p.a.all()); err != nil || len(socks) != 1 {
		t.Fatalf("fetchSockets from A = %d sockets, %v; want bob's", len(socks), err)
	}
}

// shardTraffic sends, from one instance, numbered broadcasts to every room
// in rounds, and collects what a member on another instance receives.
type shardTraffic struct {
	rooms     []string
	stop      chan struct{}
	done      chan struct{} // the sender stopped
	quit      chan struct{} // stops the collector
	collected chan struct{} // the collector stopped

	mu     sync.Mutex             // guards the following fields
	sentAt []time.Time            // when each round was sent
	got    map[string][]int       // room -> rounds received, in arrival order
	when   map[string][]time.Time // room -> when each arrived
	ended  map[string]bool        // room -> its end marker arrived
}

// startShardTraffic starts a round of broadcasts every interval from p.a,
// and the collection of bob's events.
func startShardTraffic(t *testing.T, p *shardPair, interval time.Duration) *shardTraffic {
	tr := &shardTraffic{
		rooms:     p.rooms,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		quit:      make(chan struct{}),
		collected: make(chan struct{}),
		got:       make(map[string][]int),
		when:      make(map[string][]time.Time),
		ended:     make(map[string]bool),
	}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for round := 0; ; round++ {
			tr.mu.Lock()
			tr.sentAt = append(tr.sentAt, time.Now())
			tr.mu.Unlock()
			for _, r := range p.rooms {
				_ = p.a.io.To(socket.Room(r)).Emit("m", r, round)
			}
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
		}
	}()
	go func() {
		defer close(tr.collected)
		for {
			var ev []any
			select {
			case ev = <-p.bob.events:
			case <-tr.quit:
			}
			if ev == nil {
				return
			}
			if len(ev) < 2 {
				continue
			}
			r, _ := ev[1].(string)
			tr.mu.Lock()
			switch ev[0] {
			case "m":
				i, _ := ev[2].(float64)
				tr.got[r] = append(tr.got[r], int(i))
				tr.when[r] = append(tr.when[r], time.Now())
			case "end":
				tr.ended[r] = true
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

// finish stops the traffic, waits until an end marker has come through
// every room's channel, and checks that each room's broadcasts arrived in
// order and none twice, and that every round sent after since+bound
// arrived. It returns the longest time a room went without a broadcast.
func (tr *shardTraffic) finish(t *testing.T, p *shardPair, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	close(tr.stop)
	<-tr.done
	adapterWaitFor(t, "every room's end marker to come through", func() bool {
		for _, r := range tr.rooms {
			_ = p.a.io.To(socket.Room(r)).Emit("end", r)
		}
		time.Sleep(50 * time.Millisecond)
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, r := range tr.rooms {
			if !tr.ended[r] {
				return false
			}
		}
		return true
	})
	close(tr.quit)
	<-tr.collected
	var longest time.Duration
	for _, r := range tr.rooms {
		got := tr.got[r]
		seen := make(map[int]bool, len(got))
		for i, round := range got {
			if seen[round] {
				t.Fatalf("room %s: round %d arrived twice: %v", r, round, got)
			}
			seen[round] = true
			if i == 0 || round > got[i-1] {
				continue
			}
			t.Fatalf("room %s: round %d arrived after round %d: %v", r, round, got[i-1], got)
		}
		for i := 1; i < len(tr.when[r]); i++ {
			longest = max(longest, tr.when[r][i].Sub(tr.when[r][i-1]))
		}
		have := make(map[int]bool, len(got))
		for _, i := range got {
			have[i] = true
		}
		for round, at := range tr.sentAt {
			if at.After(since.Add(bound)) && !have[round] {
				t.Fatalf("room %s: round %d, sent %v after the change, never arrived", r, round, at.Sub(since))
			}
		}
	}
	return longest
}

// shardGapBound is how long after Redis has moved a slot (or promoted a
// replica) a room's broadcasts may still be lost: the check interval, its
// retry and a few round trips, with room for a loaded machine.
const shardGapBound = shardCheckInterval + time.Second

// shardedSlotMove moves the slots of some rooms' channels to another
// master during traffic: after a bounded gap every room's broadcasts arrive
// again, in order, none twice.
func shardedSlotMove(t *testing.T, rc *testkit.RedisCluster) {
	rooms := shardRooms(12)
	p := newShardPair(t, rc, "t-shard-move", rooms)
	tr := startShardTraffic(t, p, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)

	// Move the slot of every other room to the next master.
	moved := 0
	for i, r := range rooms {
		if i%2 == 1 {
			continue
		}
		slot := keySlot(p.b.builder.roomChannel("/", socket.Room(r)))
		from := rc.MasterOf(t, slot)
		to := rc.Nodes[(slices.Index(rc.Nodes, from)+1)%len(rc.Nodes)]
		rc.MoveSlot(t, slot, to)
		moved++
	}
	since := time.Now()
	time.Sleep(shardGapBound + 200*time.Millisecond)
	longest := tr.finish(t, p, since, shardGapBound)
	t.Logf("moved %d slots; the longest a room went without a broadcast: %v; channels placed again: %d", moved, longest, p.b.builder.Stats().Replaced)
	if p.b.builder.Stats().Replaced == 0 {
		t.Fatal("no channel was placed again after its slot moved")
	}
	if !p.a.builder.Ready() || !p.b.builder.Ready() {
		t.Fatal("an instance is not ready after the moves")
	}
}

// shardedFailover fails over, with CLUSTER FAILOVER, the master of a
// room's channel during traffic: after a bounded gap every room's
// broadcasts arrive again, in order, none twice, and both instances are
// ready.
func shardedFailover(t *testing.T, rc *testkit.RedisCluster) {
	rooms := shardRooms(12)
	p := newShardPair(t, rc, "t-shard-failover", rooms)
	tr := startShardTraffic(t, p, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	master := rc.MasterOf(t, keySlot(p.b.builder.roomChannel("/", socket.Room(rooms[0]))))
	rc.Failover(t, rc.ReplicaOf(t, master))
	since := time.Now()
	time.Sleep(shardGapBound + 200*time.Millisecond)
	longest := tr.finish(t, p, since, shardGapBound)
	t.Logf("the longest a room went without a broadcast: %v", longest)
	waitNodes(t, 2, p.a, p.b)
}

// shardedMasterCrash kills the master of a room's channel during traffic:
// once its replica has taken over (after cluster-node-timeout), after a
// bounded gap every room's broadcasts arrive again, in order, none twice,
// and both instances are ready.
func shardedMasterCrash(t *testing.T, rc *testkit.RedisCluster) {
	rooms := shardRooms(12)
	p := newShardPair(t, rc, "t-shard-crash", rooms)
	tr := startShardTraffic(t, p, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	master := rc.MasterOf(t, keySlot(p.b.builder.roomChannel("/", socket.Room(rooms[0]))))
	rc.KillMaster(t, master)
	since := time.Now()
	time.Sleep(shardGapBound + 200*time.Millisecond)
	longest := tr.finish(t, p, since, shardGapBound)
	t.Logf("the longest a room went without a broadcast: %v (Redis takes over after cluster-node-timeout)", longest)
	waitNodes(t, 2, p.a, p.b)
}

// shardedLegacyPeerLogged checks that an instance of an older build, which
// listens to the classic bus channel, is reported.
func shardedLegacyPeerLogged(t *testing.T, rc *testkit.RedisCluster) {
	logs := &shardLogCapture{}
	opts := adapterTestOptions(t, "t-shard-legacy")
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	old := rc.Client().Subscribe(t.Context(), "t-shard-legacy:bus")
	t.Cleanup(func() { _ = old.Close() })
	if _, err := old.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := newAdapterTestNode(t, rc.Client(), adapterNodeConfig{opts: opts})
	adapterWaitFor(t, "the older instance to be reported", func() bool {
		return n.builder.Ready() && logs.contains("older chatd build")
	})
}

// shardLogCapture keeps what is logged to it.
type shardLogCapture struct {
	mu  sync.Mutex // guards buf
	buf strings.Builder
}

func (c *shardLogCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *shardLogCapture) contains(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Contains(c.buf.String(), s)
}

// BenchmarkShardedFanout compares, on a loopback cluster of three masters,
// what a room broadcast costs with a channel per room (only the instances
// with a socket in the room get it) and with rooms hashed onto a fixed
// number of partition channels that every instance listens to (each then
// gets every message and drops the others' rooms). Four instances, 256
// rooms, each room on one instance; SPUBLISH in pipelines of 128; ns/op
// covers publishing and every delivery.
func BenchmarkShardedFanout(b *testing.B) {
	rc := testkit.StartRedisCluster(b, 3)
	const instances, rooms, partitions = 4, 256, 16
	roomChannel := func(r int) string { return fmt.Sprintf("bench:room:{r:%d}", r) }
	partChannel := func(r int) string { return busPartitionChannel("bench:part", r%partitions) }
	run := func(b *testing.B, channel func(int) string, wants func(inst, room int) bool, perMessage int) {
		cc := rc.Client()
		ctx := context.Background()
		var received sync.WaitGroup
		var count atomic.Int64
		var subs []*goredis.PubSub
		for inst := range instances {
			byNode := make(map[string]*goredis.PubSub)
			seen := make(map[string]bool)
			for r := range rooms {
				ch := channel(r)
				if !wants(inst, r) || seen[ch] {
					continue
				}
				seen[ch] = true
				node, err := cc.MasterForKey(ctx, ch)
				if err != nil {
					b.Fatal(err)
				}
				ps := byNode[node.Options().Addr]
				if ps == nil {
					ps = node.SSubscribe(ctx)
					byNode[node.Options().Addr] = ps
					subs = append(subs, ps)
				}
				if err := ps.SSubscribe(ctx, ch); err != nil {
					b.Fatal(err)
				}
				if _, err := ps.Receive(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, ps := range subs {
			received.Add(1)
			go func() {
				defer received.Done()
				for range ps.Channel() {
					count.Add(1)
				}
			}()
		}
		payload := make([]byte, 200)
		b.ResetTimer()
		for i := 0; i < b.N; {
			pipe := cc.Pipeline()
			for j := 0; j < 128 && i < b.N; j, i = j+1, i+1 {
				pipe.SPublish(ctx, channel(i%rooms), payload)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		want := int64(b.N * perMessage)
		for count.Load() < want {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		b.ReportMetric(float64(count.Load())/float64(b.N), "deliveries/op")
		for _, ps := range subs {
			_ = ps.Close()
		}
		received.Wait()
	}
	b.Run("channel-per-room", func(b *testing.B) {
		run(b, roomChannel, func(inst, room int) bool { return room%instances == inst }, 1)
	})
	b.Run("partitions-16", func(b *testing.B) {
		run(b, partChannel, func(int, int) bool { return true }, instances)
	})
}

// The table of the last message numbers handled forgets the channels this
// instance left, so that rooms that once had a local socket (every
// socket's own id among them) take no memory for the life of the sender,
// and a channel subscribed again takes its senders' next messages.
func TestSeqsForgetChannels(t *testing.T) {
	q := seqs{last: make(map[string]map[string]uint64)}
	msg := func(from string, seq uint64) *wireMessage { return &wireMessage{From: from, Seq: seq} }
	if !q.fresh("room:a", msg("x", 5)) || !q.fresh("room:b", msg("x", 6)) || !q.fresh("room:a", msg("y", 2)) {
		t.Fatal("first messages refused")
	}
	if q.fresh("room:a", msg("x", 4)) {
		t.Fatal("an older message on a channel was taken")
	}
	q.forgetChannels([]string{"room:a"})
	for from, byChannel := range q.last {
		if _, ok := byChannel["room:a"]; ok {
			t.Errorf("room:a is still in the table for %s", from)
		}
	}
	if _, ok := q.last["x"]["room:b"]; !ok {
		t.Error("room:b was forgotten with room:a")
	}
	if !q.fresh("room:a", msg("x", 7)) {
		t.Error("a channel subscribed again refused its sender's next message")
	}
	if q.fresh("room:b", msg("x", 6)) {
		t.Error("room:b took a message it had handled")
	}
}
