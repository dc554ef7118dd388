package redis

import (
	"context"
	"sync/atomic"
	"testing"

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
