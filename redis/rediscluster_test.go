package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

func TestRedisCluster(t *testing.T) {
	rc := testkit.StartRedisCluster(t, 3)

	t.Run("stores", func(t *testing.T) {
		client := rc.Client()
		roomstest.TestStores(t, func(t *testing.T) rooms.Stores {
			return storeNewStores(t, client, storeNewPrefix())
		}, storeSuiteOptions)
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
		storePresenceReapScenario(t, rc.Client())
	})

	t.Run("layout", func(t *testing.T) {
		storeLayoutScenario(t, rc.Client())
	})

	t.Run("migrate layout", func(t *testing.T) {
		storeMigrateScenario(t, rc.Client())
	})

	t.Run("message round trips", func(t *testing.T) {
		// Counted on the node clients: a redirect would be a round trip.
		client, counter := rc.Client(), &storeRoundTrips{}
		client.OnNewNode(func(node *goredis.Client) { node.AddHook(counter) })
		storeMessageRoundTrips(t, client, counter)
	})

}

// TestNewClientFollowsAKilledMaster: when a master crashes and its replica
// is elected, the client built by NewClient sends the crashed master's
// slots to the new master within seconds. go-redis on its own kept the old
// slot map for up to its 60 s reload interval, failing every command for
// those slots with a dial error, because a dead node answers no MOVED.
func TestNewClientFollowsAKilledMaster(t *testing.T) {
	rc := testkit.StartRedisClusterWith(t, testkit.RedisClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	client, err := NewClient(ClientConfig{Addrs: rc.Addrs, Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := t.Context()
	victim := rc.Nodes[0]
	replica := rc.ReplicaOf(t, victim)
	key := keyOnNode(t, victim)
	if err := client.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The write has reached the replica before the master dies.
	testkit.Eventually(t, 5*time.Second, func() bool {
		// READONLY and the GET in one pipeline: one connection, which
		// READONLY lets read from the replica.
		var get *goredis.StringCmd
		_, err := replica.Client().Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Do(ctx, "readonly")
			get = p.Get(ctx, key)
			return nil
		})
		return err == nil && get.Val() == "before"
	}, "the write to reach the replica")

	victim.Stop()
	watcher := replica.Client()
	testkit.Eventually(t, 15*time.Second, func() bool {
		info, err := watcher.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		role, err := watcher.Do(ctx, "role").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	}, "the replica of %s to be elected", victim.Addr())

	elected := time.Now()
	testkit.Eventually(t, 5*time.Second, func() error {
		return client.Set(ctx, key, "after", 0).Err()
	}, "a write to a slot of the crashed master to succeed")
	t.Logf("the client wrote to the new master %v after its election", time.Since(elected).Round(time.Millisecond))
	if v, err := client.Get(ctx, key).Result(); err != nil || v != "after" {
		t.Errorf("GET %s = %q, %v; want \"after\"", key, v, err)
	}
}

// keyOnNode returns a key whose hash slot the master node serves: one it
// answers itself instead of redirecting with MOVED.
func keyOnNode(t *testing.T, node *testkit.RedisServer) string {
	t.Helper()
	rdb := node.Client()
	for i := range 1000 {
		key := fmt.Sprintf("failover-%d", i)
		if err := rdb.Get(t.Context(), key).Err(); errors.Is(err, goredis.Nil) {
			return key
		}
	}
	t.Fatalf("no key found on %s", node.Addr())
	return ""
}
