package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

// testSentinelMaster is the master name the Sentinel tests monitor.
const testSentinelMaster = "m"

// testRedisSentinel is a master redis-server, a replica of it and a
// redis-sentinel monitoring them, on loopback ports, stopped when the test
// ends.
type testRedisSentinel struct {
	t               testing.TB
	master, replica *adapterTestRedis
	sentinel        *adapterTestRedis
	sentinelClient  *goredis.SentinelClient
}

// startTestRedisSentinel starts a master, a replica that has synced with
// it, and one Sentinel (quorum 1) that knows both.
func startTestRedisSentinel(t testing.TB) *testRedisSentinel {
	t.Helper()
	s := &testRedisSentinel{t: t}
	s.master = startAdapterTestRedis(t)
	s.replica = startTestRedisProcess(t, func(dir string, port int) ([]string, error) {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--replicaof", "127.0.0.1", strconv.Itoa(s.master.port)}, nil
	})
	replica := s.replica.client()
	adapterWaitFor(t, "the replica to sync with the master", func() bool {
		info, err := replica.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	// Started after the replica, the Sentinel learns of it from its first
	// INFO to the master rather than ten seconds later.
	s.sentinel = startTestRedisProcess(t, func(dir string, port int) ([]string, error) {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 5000\n",
			port, dir, testSentinelMaster, s.master.port)
		// The Sentinel rewrites its configuration file.
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	})
	s.sentinelClient = goredis.NewSentinelClient(&goredis.Options{Addr: s.sentinel.addr(), DisableIdentity: true})
	t.Cleanup(func() { _ = s.sentinelClient.Close() })
	adapterWaitFor(t, "the Sentinel to know the master and its replica", func() bool {
		ctx := context.Background()
		m, err := s.sentinelClient.Master(ctx, testSentinelMaster).Result()
		if err != nil || m["flags"] != "master" || net.JoinHostPort(m["ip"], m["port"]) != s.master.addr() {
			return false
		}
		replicas, err := s.sentinelClient.Replicas(ctx, testSentinelMaster).Result()
		return err == nil && len(replicas) == 1 && replicas[0]["flags"] == "slave" &&
			replicas[0]["master-link-status"] == "ok"
	})
	return s
}

// client returns a failover client built as chatd builds it for
// redis.addrs with redis.master_name; it is closed when the test ends.
func (s *testRedisSentinel) client() goredis.UniversalClient {
	u := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 []string{s.sentinel.addr()},
		MasterName:            testSentinelMaster,
		ClientName:            "chatd",
		DialTimeout:           2 * time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	})
	s.t.Cleanup(func() { _ = u.Close() })
	return u
}

// failover has the Sentinel promote the replica (SENTINEL FAILOVER) and
// waits until the Sentinel names it and it runs as the master. The old
// master keeps running as a master until the Sentinel next checks it (up to
// ten seconds) and turns it into a replica.
func (s *testRedisSentinel) failover(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	// Every write so far has reached the replica.
	if err := s.master.client().Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatalf("WAIT: %v", err)
	}
	adapterWaitFor(t, "SENTINEL FAILOVER to be accepted", func() bool {
		// Refused (NOGOODSLAVE) while the Sentinel has not yet checked the
		// replica.
		return s.sentinelClient.Failover(ctx, testSentinelMaster).Err() == nil
	})
	newMaster := s.replica.client()
	adapterWaitFor(t, "the replica to be the master", func() bool {
		addr, err := s.sentinelClient.GetMasterAddrByName(ctx, testSentinelMaster).Result()
		if err != nil || len(addr) != 2 || net.JoinHostPort(addr[0], addr[1]) != s.replica.addr() {
			return false
		}
		role, err := newMaster.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(role, "role:master")
	})
}

func TestRedisSentinel(t *testing.T) {
	s := startTestRedisSentinel(t)

	t.Run("stores", func(t *testing.T) {
		client := s.client()
		roomstest.TestStores(t, func(t *testing.T) rooms.Stores {
			return storeNewStores(t, client, storeNewPrefix())
		}, roomstest.Options{HistorySize: storeTestHistorySize, MemberHistory: true})
	})

	t.Run("presence reap", func(t *testing.T) {
		storePresenceReapScenario(t, s.client())
	})

	// The adapter and the stores keep working when Sentinel promotes the
	// replica: the instances stay ready, a broadcast crosses them both
	// ways, and what the stores held before is there after.
	t.Run("adapter and failover", func(t *testing.T) {
		inst := adapterTopologyScenario(t, "t-topo-sentinel", s.client)
		ctx := t.Context()
		stores := storeNewStores(t, s.client(), storeNewPrefix())
		if _, err := stores.Membership.Join(ctx, "ann", "lobby", 10); err != nil {
			t.Fatal(err)
		}
		before, err := stores.History.Append(ctx, rooms.Message{Room: "lobby", UserID: "ann", Name: "Ann", Text: "before", TS: 1})
		if err != nil {
			t.Fatal(err)
		}

		s.failover(t)

		// Both adapters move their subscription to the new master (go-redis
		// moves only the command connections; the adapter notices that its
		// own heartbeats stop coming back) and are ready again.
		newMaster := s.replica.client()
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
		if list, err := stores.Membership.Rooms(ctx, "ann"); err != nil || !slices.Equal(list, []string{"lobby"}) {
			t.Fatalf("after the failover ann's rooms are %v, %v; want [lobby]", list, err)
		}
		after, err := stores.History.Append(ctx, rooms.Message{Room: "lobby", UserID: "ann", Name: "Ann", Text: "after", TS: 2})
		if err != nil {
			t.Fatalf("Append after the failover: %v", err)
		}
		page, err := stores.History.Page(ctx, "lobby", rooms.Query{Limit: 10})
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
	})
}
