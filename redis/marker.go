package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// DataMarker notices that Redis lost its data: a Redis without persistence
// that restarted, a failover to an empty replica, a FLUSHALL. Each instance
// writes a key of its own, "<prefix>:marker:<instance>", when it starts and
// checks it periodically; a key that is gone while the instance runs means
// everything chatd keeps in Redis (membership, history, presence, recovery
// sessions) is gone too. The key expires MarkerTTL after the last check, so
// that instances that stopped leave nothing behind for long.
//
// On Redis Cluster the key lives on one shard: a shard that lost its data
// alone goes unnoticed.
type DataMarker struct {
	client  goredis.UniversalClient
	key     string
	value   string
	started bool // the key was written once
}

// MarkerTTL is the lifetime of a marker key without a check.
const MarkerTTL = 24 * time.Hour

// NewDataMarker returns the [DataMarker] of instanceID under prefix.
func NewDataMarker(client goredis.UniversalClient, prefix, instanceID string) (*DataMarker, error) {
	prefix, _, err := storeSetup(client, prefix, nil)
	if err != nil {
		return nil, err
	}
	if instanceID == "" {
		return nil, fmt.Errorf("cluster: a data marker needs an instance id")
	}
	return &DataMarker{
		client: client,
		key:    prefix + ":marker:" + instanceID,
		value:  fmt.Sprintf("%s started %s", instanceID, time.Now().UTC().Format(time.RFC3339)),
	}, nil
}

// Start writes the marker. A Redis that does not answer yet is no error
// for the caller to stop on: [DataMarker.Check] writes it later.
func (m *DataMarker) Start(ctx context.Context) error {
	if err := m.client.Set(ctx, m.key, m.value, MarkerTTL).Err(); err != nil {
		return err
	}
	m.started = true
	return nil
}

// Check reports whether the marker written before is gone (Redis lost its
// data); it then writes it again, so that each loss is reported once. It
// renews the marker's expiry otherwise. Check is for one goroutine.
func (m *DataMarker) Check(ctx context.Context) (lost bool, err error) {
	if !m.started {
		return false, m.Start(ctx)
	}
	ok, err := m.client.PExpire(ctx, m.key, MarkerTTL).Result()
	if err != nil {
		return false, err
	}
	if ok {
		return false, nil
	}
	if err := m.client.Set(ctx, m.key, m.value, MarkerTTL).Err(); err != nil {
		return true, err
	}
	return true, nil
}

// Key is the marker's Redis key.
func (m *DataMarker) Key() string { return m.key }
