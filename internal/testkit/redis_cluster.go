package testkit

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of private redis-servers (masters, and
// with StartRedisClusterWithReplicas a replica of each) on loopback ports, stopped when the test ends.
type RedisCluster struct {
	t testing.TB
	// Nodes are the cluster's masters.
	Nodes []*RedisServer
	// Replicas[i] is the replica of Nodes[i], when the cluster has
	// replicas.
	Replicas []*RedisServer
	// Addrs are the masters' addresses, as redis.addrs lists them.
	Addrs []string
}

// StartRedisCluster starts masters cluster-enabled redis-servers, joins
// them with `redis-cli --cluster create` (the slots split evenly, no
// replicas) and waits until every node reports cluster_state:ok. A missing
// redis-server or redis-cli is handled as RequireRedisServer says.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	return startRedisCluster(t, masters, 0, 0)
}

// StartRedisClusterWithReplicas starts a Redis Cluster of masters masters
// with one replica each, nodeTimeout being cluster-node-timeout: how long
// a master may be unreachable before its replica takes over. It waits until
// every node reports cluster_state:ok and every replica is in sync.
// Nodes are the masters, Replicas[i] is the replica of Nodes[i].
func StartRedisClusterWithReplicas(t testing.TB, masters int, nodeTimeout time.Duration) *RedisCluster {
	t.Helper()
	return startRedisCluster(t, masters, 1, nodeTimeout)
}

// startRedisCluster starts masters*(1+replicas) nodes and joins them;
// nodeTimeout 0 keeps Redis's default cluster-node-timeout.
func startRedisCluster(t testing.TB, masters, replicas int, nodeTimeout time.Duration) *RedisCluster {
	t.Helper()
	RequireRedisServer(t)
	cli := requireBinary(t, "redis-cli", "redis-tools")
	c := &RedisCluster{t: t}
	var all []*RedisServer
	for range masters * (1 + replicas) {
		n := StartRedisProcess(t, func(dir string, port int) ([]string, error) {
			// The cluster bus gets a port of its own (cluster-port), as
			// port+10000 may be taken or out of range.
			bus, err := FreePort()
			if err != nil {
				return nil, err
			}
			args := []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-port", strconv.Itoa(bus),
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", dir,
			}
			if nodeTimeout > 0 {
				args = append(args, "--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10))
			}
			return args, nil
		})
		all = append(all, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"--cluster", "create"}
	for _, n := range all {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil { //nolint:gosec // redis-cli from PATH, with the nodes started above
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	known := fmt.Sprintf("cluster_known_nodes:%d", len(all))
	for _, n := range all {
		rdb := n.Client()
		waitFor(t, "cluster_state:ok on "+n.Addr(), func() bool {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, known)
		})
	}
	// redis-cli picks which nodes are masters: ask each, and pair every
	// replica with its master once their link is up.
	replicaOf := map[string]*RedisServer{} // master's port to its replica
	for _, n := range all {
		rdb := n.Client()
		var master string
		waitFor(t, n.Addr()+" to be a master or a replica in sync", func() bool {
			info, err := rdb.Info(context.Background(), "replication").Result()
			if err != nil {
				return false
			}
			if strings.Contains(info, "role:master") {
				return true
			}
			master = infoField(info, "master_port")
			return strings.Contains(info, "master_link_status:up")
		})
		if master == "" {
			c.Nodes = append(c.Nodes, n)
			c.Addrs = append(c.Addrs, n.Addr())
		} else {
			replicaOf[master] = n
		}
	}
	if replicas > 0 {
		for _, m := range c.Nodes {
			r := replicaOf[strconv.Itoa(m.Port())]
			if r == nil {
				t.Fatalf("the master on %s has no replica", m.Addr())
			}
			c.Replicas = append(c.Replicas, r)
		}
	}
	return c
}

// infoField returns the value of one "name:value" line of INFO's answer.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// Client returns a cluster client built as chatd builds it for redis.addrs
// without redis.master_name; it is closed when the test ends.
func (c *RedisCluster) Client() *goredis.ClusterClient {
	u := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 c.Addrs,
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
