package testkit

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisClusterOptions shapes the cluster StartRedisClusterWith starts.
type RedisClusterOptions struct {
	// Masters is the number of masters; the slots split evenly between
	// them. At least three (redis-cli refuses fewer).
	Masters int
	// Replicas is the number of replicas of each master.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may not answer
	// before the others count it as failing and its replica takes over.
	// Default: 1 s, so that a test of a failover takes a few seconds (Redis
	// itself defaults to 15 s).
	NodeTimeout time.Duration
}

// StartRedisClusterWith starts a Redis Cluster as o describes and waits
// until every node reports cluster_state:ok and agrees on who serves every
// slot, with every replica in place. Nodes holds the masters, in the order
// of their slots, and Replicas the replicas, the i-th replicating the
// (i mod Masters)-th master; Addrs lists the masters only. It joins the
// nodes itself (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE) rather than with
// `redis-cli --cluster create`, which waits in steps of a second.
func StartRedisClusterWith(t testing.TB, o RedisClusterOptions) *RedisCluster {
	t.Helper()
	RequireRedisServer(t)
	if o.Masters < 1 {
		t.Fatalf("StartRedisClusterWith: %d masters", o.Masters)
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = time.Second
	}
	c := &RedisCluster{t: t}
	busPorts := make(map[int]int)
	var mu sync.Mutex
	for i := range o.Masters * (1 + o.Replicas) {
		n := StartRedisProcess(t, func(dir string, port int) ([]string, error) {
			bus, err := FreePort()
			if err != nil {
				return nil, err
			}
			mu.Lock()
			busPorts[port] = bus
			mu.Unlock()
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", dir,
				// A replica's first sync starts at once, not after the
				// default 5 s wait for other replicas.
				"--repl-diskless-sync-delay", "0",
			}, nil
		})
		c.all = append(c.all, n)
		if i < o.Masters {
			c.Nodes = append(c.Nodes, n)
			c.Addrs = append(c.Addrs, n.Addr())
		} else {
			c.Replicas = append(c.Replicas, n)
		}
	}
	ctx := context.Background()
	must := func(n *RedisServer, what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("joining the cluster: %s on %s: %v", what, n.Addr(), err)
		}
	}
	for i, n := range c.all {
		// Distinct epochs spare the nodes resolving a collision first.
		must(n, "SET-CONFIG-EPOCH", n.Client().Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err())
	}
	for i, n := range c.Nodes {
		lo, hi := i*16384/o.Masters, (i+1)*16384/o.Masters-1
		must(n, "ADDSLOTSRANGE", n.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err())
	}
	first := c.all[0]
	for _, n := range c.all[1:] {
		must(first, "MEET", first.Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.Port(), busPorts[n.Port()]).Err())
	}
	total := len(c.all)
	waitFor(t, "every cluster node to know every other", func() bool {
		for _, n := range c.all {
			info, err := n.Client().ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(total)+"\r") {
				return false
			}
		}
		return true
	})
	for i, r := range c.Replicas {
		id := c.NodeID(t, c.Nodes[i%o.Masters])
		must(r, "REPLICATE", r.Client().Do(ctx, "CLUSTER", "REPLICATE", id).Err())
	}
	for _, r := range c.Replicas {
		rdb := r.Client()
		waitFor(t, "the replica "+r.Addr()+" to sync", func() bool {
			info, err := rdb.Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up")
		})
	}
	// The nodes list a replica in CLUSTER SLOTS once its replication
	// offset is not 0, that is after its master's first write (or its
	// first PING to replicas, ten seconds on): write one.
	for _, n := range c.Nodes {
		must(n, "FLUSHALL", n.Client().FlushAll(ctx).Err())
	}
	waitFor(t, "every cluster node to agree on the slot map", func() bool { return c.consistent(len(c.Replicas)) })
	return c
}

// servers returns every node, masters and replicas; for a cluster from
// StartRedisCluster, the masters.
func (c *RedisCluster) servers() []*RedisServer {
	if len(c.all) > 0 {
		return c.all
	}
	return c.Nodes
}

// consistent reports whether every running node reports cluster_state:ok,
// the same master for every slot, and, when replicas > 0, that many
// replicas in all.
func (c *RedisCluster) consistent(replicas int) bool {
	ctx := context.Background()
	var want string
	for _, n := range c.servers() {
		if !n.running() {
			continue
		}
		rdb := n.Client()
		info, err := rdb.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		slots, err := rdb.ClusterSlots(ctx).Result() //nolint:staticcheck // the view go-redis itself reads; CLUSTER SHARDS says the same
		if err != nil {
			return false
		}
		slices.SortFunc(slots, func(x, y goredis.ClusterSlot) int { return x.Start - y.Start })
		var b strings.Builder
		seen := 0
		for _, s := range slots {
			if len(s.Nodes) == 0 {
				return false
			}
			fmt.Fprintf(&b, "%d-%d:%s;", s.Start, s.End, s.Nodes[0].Addr)
			seen += len(s.Nodes) - 1
		}
		if replicas > 0 && seen < replicas {
			return false
		}
		if want == "" {
			want = b.String()
		} else if b.String() != want {
			return false
		}
	}
	return want != ""
}

// WaitConsistent waits until every running node reports cluster_state:ok
// and names the same master for every slot.
func (c *RedisCluster) WaitConsistent(t testing.TB) {
	t.Helper()
	waitFor(t, "every cluster node to agree on the slot map", func() bool { return c.consistent(0) })
}

// Server returns the node listening on addr, nil when it is none of the
// cluster's.
func (c *RedisCluster) Server(addr string) *RedisServer {
	for _, n := range c.servers() {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// NodeID returns n's cluster node id.
func (c *RedisCluster) NodeID(t testing.TB, n *RedisServer) string {
	t.Helper()
	id, err := n.Client().Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatalf("CLUSTER MYID on %s: %v", n.Addr(), err)
	}
	return id
}

// MasterOf returns the node that serves slot now, as the first running
// node asked says.
func (c *RedisCluster) MasterOf(t testing.TB, slot int) *RedisServer {
	t.Helper()
	for _, n := range c.servers() {
		if !n.running() {
			continue
		}
		slots, err := n.Client().ClusterSlots(context.Background()).Result() //nolint:staticcheck // the view go-redis itself reads; CLUSTER SHARDS says the same
		if err != nil {
			continue
		}
		for _, s := range slots {
			if s.Start <= slot && slot <= s.End && len(s.Nodes) > 0 {
				return c.Server(s.Nodes[0].Addr)
			}
		}
	}
	t.Fatalf("no node serves slot %d", slot)
	return nil
}

// KeySlot returns the hash slot of key (or of a shard channel), as the
// cluster computes it (CLUSTER KEYSLOT).
func (c *RedisCluster) KeySlot(t testing.TB, key string) int {
	t.Helper()
	for _, n := range c.servers() {
		if !n.running() {
			continue
		}
		slot, err := n.Client().ClusterKeySlot(context.Background(), key).Result()
		if err == nil {
			return int(slot)
		}
	}
	t.Fatalf("CLUSTER KEYSLOT %q: no node answers", key)
	return 0
}

// MoveSlot moves slot, with its keys, to the master to, the way
// `redis-cli --cluster reshard` does: the target imports it, the source
// migrates it, the keys go over with MIGRATE, then every master is told
// the new owner (CLUSTER SETSLOT NODE, the target first). It waits until
// every node agrees. Sharded Pub/Sub subscribers of the slot's channels
// on the source get a sunsubscribe push when the source lets the slot go.
func (c *RedisCluster) MoveSlot(t testing.TB, slot int, to *RedisServer) {
	t.Helper()
	ctx := context.Background()
	from := c.MasterOf(t, slot)
	if from == to {
		return
	}
	fromID, toID := c.NodeID(t, from), c.NodeID(t, to)
	src, dst := from.Client(), to.Client()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("moving slot %d from %s to %s: %s: %v", slot, from.Addr(), to.Addr(), what, err)
		}
	}
	must("SETSLOT IMPORTING", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).Err())
	must("SETSLOT MIGRATING", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID).Err())
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		must("GETKEYSINSLOT", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.Port(), "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("MIGRATE", src.Do(ctx, args...).Err())
	}
	must("SETSLOT NODE on the target", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err())
	must("SETSLOT NODE on the source", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err())
	for _, n := range c.Nodes {
		if n != from && n != to && n.running() {
			_ = n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID).Err()
		}
	}
	c.WaitConsistent(t)
}

// ReplicaOf returns a replica of master, nil when it has none.
func (c *RedisCluster) ReplicaOf(t testing.TB, master *RedisServer) *RedisServer {
	t.Helper()
	for _, r := range c.Replicas {
		if !r.running() {
			continue
		}
		role, err := r.Client().Do(context.Background(), "ROLE").Slice()
		if err == nil && len(role) >= 3 && role[0] == "slave" &&
			fmt.Sprint(role[1]) == "127.0.0.1" && fmt.Sprint(role[2]) == strconv.Itoa(master.Port()) {
			return r
		}
	}
	return nil
}

// Failover promotes replica to master with CLUSTER FAILOVER (its master
// agrees and becomes its replica, nothing is lost) and waits until every
// node agrees. Swaps replica and its old master between Nodes and Replicas.
// Sharded Pub/Sub subscribers of the old master get a sunsubscribe push for
// each of their channels.
func (c *RedisCluster) Failover(t testing.TB, replica *RedisServer) {
	t.Helper()
	ctx := context.Background()
	old := c.masterOfReplica(t, replica)
	if err := replica.Client().Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER on %s: %v", replica.Addr(), err)
	}
	c.awaitPromotion(t, replica, old)
}

// KillMaster stops master as a crash would and waits until its replica
// has taken over (about twice NodeTimeout) and every running node agrees.
// The killed node stays stopped; it is moved out of Nodes.
func (c *RedisCluster) KillMaster(t testing.TB, master *RedisServer) *RedisServer {
	t.Helper()
	replica := c.ReplicaOf(t, master)
	if replica == nil {
		t.Fatalf("%s has no replica to take over", master.Addr())
	}
	master.Stop()
	c.awaitPromotion(t, replica, master)
	return replica
}

func (c *RedisCluster) masterOfReplica(t testing.TB, replica *RedisServer) *RedisServer {
	t.Helper()
	for _, m := range c.Nodes {
		if c.ReplicaOf(t, m) == replica {
			return m
		}
	}
	t.Fatalf("%s is no master's replica", replica.Addr())
	return nil
}

// awaitPromotion waits until replica runs as a master and every running
// node agrees, then records the roles.
func (c *RedisCluster) awaitPromotion(t testing.TB, replica, old *RedisServer) {
	t.Helper()
	waitFor(t, replica.Addr()+" to be a master", func() bool {
		role, err := replica.Client().Do(context.Background(), "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	c.WaitConsistent(t)
	for i, n := range c.Nodes {
		if n == old {
			c.Nodes[i] = replica
		}
	}
	c.Addrs = c.Addrs[:0]
	for _, n := range c.Nodes {
		c.Addrs = append(c.Addrs, n.Addr())
	}
	for i, r := range c.Replicas {
		if r == replica {
			c.Replicas[i] = old
		}
	}
}
