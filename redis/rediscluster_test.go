package redis

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

// testRedisCluster is a Redis Cluster of private redis-servers (masters
// only) on loopback ports, stopped when the test ends.
type testRedisCluster struct {
	t     testing.TB
	nodes []*adapterTestRedis
	addrs []string
}

// testFreePort asks the kernel for a free loopback port.
func testFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startTestRedisCluster starts masters cluster-enabled redis-servers, joins
// them with `redis-cli --cluster create` (the slots split evenly, no
// replicas) and waits until every node reports cluster_state:ok.
func startTestRedisCluster(t testing.TB, masters int) *testRedisCluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("the Redis Cluster tests need redis-cli in PATH (apt-get install redis-tools): %v", err)
	}
	c := &testRedisCluster{t: t}
	for range masters {
		n := startTestRedisProcess(t, func(dir string, port int) ([]string, error) {
			// The cluster bus gets a port of its own (cluster-port), as
			// port+10000 may be taken or out of range.
			bus, err := testFreePort()
			if err != nil {
				return nil, err
			}
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-port", strconv.Itoa(bus),
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", dir,
			}, nil
		})
		c.nodes = append(c.nodes, n)
		c.addrs = append(c.addrs, n.addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.nodes {
		rdb := n.client()
		adapterWaitFor(t, "cluster_state:ok on "+n.addr(), func() bool {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return c
}

// client returns a cluster client built as chatd builds it for redis.addrs
// without redis.master_name; it is closed when the test ends.
func (c *testRedisCluster) client() *goredis.ClusterClient {
	u := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 c.addrs,
		IsClusterMode:         true,
		ClientName:            "chatd",
		DialTimeout:           2 * time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	})
	c.t.Cleanup(func() { _ = u.Close() })
	cc, ok := u.(*goredis.ClusterClient)
	if !ok {
		c.t.Fatalf("NewUniversalClient with IsClusterMode returned a %T", u)
	}
	return cc
}

func TestRedisCluster(t *testing.T) {
	rc := startTestRedisCluster(t, 3)

	t.Run("stores", func(t *testing.T) {
		client := rc.client()
		roomstest.TestStores(t, func(t *testing.T) rooms.Stores {
			return storeNewStores(t, client, storeNewPrefix())
		}, roomstest.Options{HistorySize: storeTestHistorySize})
		// The suite only proves something about Redis Cluster if the
		// stores' keys did not all land on one shard.
		var shards atomic.Int64
		err := client.ForEachMaster(t.Context(), func(ctx context.Context, node *goredis.Client) error {
			n, err := node.DBSize(ctx).Result()
			if n > 0 {
				shards.Add(1)
			}
			return err
		})
		if err != nil || shards.Load() < 2 {
			t.Errorf("the stores' keys are on %d shards (%v); want them spread over several", shards.Load(), err)
		}
	})

	t.Run("presence reap", func(t *testing.T) {
		storePresenceReapScenario(t, rc.client())
	})

	t.Run("adapter", func(t *testing.T) {
		adapterTopologyScenario(t, "t-topo-cluster", func() goredis.UniversalClient { return rc.client() })
	})
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
func adapterTopologyScenario(t *testing.T, prefix string, newClient func() goredis.UniversalClient) topologyInstances {
	t.Helper()
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
	// (the bus): the remote member gets them all, once, in order.
	const n = 60
	for i := range n {
		if i%3 == 2 {
			_ = a.io.To("r", "user:bob").Emit("m", i)
		} else {
			_ = a.io.To("r").Emit("m", i)
		}
	}
	_ = a.io.Emit("fence", 0)
	for _, cl := range []*adapterTestClient{alice, bob} {
		var got []int
		for _, ev := range cl.until("fence") {
			if ev[0] != "m" {
				t.Fatalf("client %s got %v", cl.sid, ev)
			}
			i, _ := ev[1].(float64)
			got = append(got, int(i))
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
		_ = a.io.Emit("fence", i)
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
	if got := adapterEventNames(bob.until("not-for-alice")); !slices.Equal(got, []string{"missed", "missed"}) {
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
	_ = a.io.Emit("fence", -1)
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
