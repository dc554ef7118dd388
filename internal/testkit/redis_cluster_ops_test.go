package testkit

import (
	"context"
	"testing"
)

// TestRedisClusterOps checks the cluster helpers other packages' tests
// rely on: a slot moves with its keys, and a planned failover swaps a
// master and its replica while keeping the data.
func TestRedisClusterOps(t *testing.T) {
	rc := StartRedisClusterWith(t, RedisClusterOptions{Masters: 3, Replicas: 1})
	if len(rc.Nodes) != 3 || len(rc.Replicas) != 3 || len(rc.Addrs) != 3 {
		t.Fatalf("%d masters, %d replicas, addrs %v; want 3, 3, 3", len(rc.Nodes), len(rc.Replicas), rc.Addrs)
	}
	ctx := context.Background()
	client := rc.Client()
	const key = "testkit:{moved}"
	if err := client.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	slot := rc.KeySlot(t, key)
	from := rc.MasterOf(t, slot)
	var to *RedisServer
	for _, n := range rc.Nodes {
		if n != from {
			to = n
			break
		}
	}
	rc.MoveSlot(t, slot, to)
	if got := rc.MasterOf(t, slot); got != to {
		t.Fatalf("slot %d is on %s after the move, want %s", slot, got.Addr(), to.Addr())
	}
	if v, err := to.Client().Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("the key on the new master: %q, %v", v, err)
	}

	replica := rc.ReplicaOf(t, to)
	if replica == nil {
		t.Fatalf("%s has no replica", to.Addr())
	}
	rc.Failover(t, replica)
	if got := rc.MasterOf(t, slot); got != replica {
		t.Fatalf("slot %d is on %s after the failover, want the replica %s", slot, got.Addr(), replica.Addr())
	}
	if rc.ReplicaOf(t, replica) != to {
		t.Fatalf("the old master %s does not replicate the new one", to.Addr())
	}
	if v, err := client.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("the key through the cluster client after the failover: %q, %v", v, err)
	}
}
