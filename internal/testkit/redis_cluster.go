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

// RedisCluster is a Redis Cluster of private redis-servers on loopback
// ports, stopped when the test ends: masters only (StartRedisCluster), or
// with replicas (StartRedisClusterWith). Its methods in
// redis_cluster_ops.go move slots and fail masters over.
type RedisCluster struct {
	t testing.TB
	// Nodes are the cluster's masters.
	Nodes []*RedisServer
	// Addrs are the masters' addresses, as redis.addrs lists them.
	Addrs []string
	// Replicas are the replicas (StartRedisClusterWith).
	Replicas []*RedisServer
	all      []*RedisServer // every node started, for StartRedisClusterWith
}

// StartRedisCluster starts masters cluster-enabled redis-servers, joins
// them with `redis-cli --cluster create` (the slots split evenly, no
// replicas) and waits until every node reports cluster_state:ok. A missing
// redis-server or redis-cli is handled as RequireRedisServer says.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	RequireRedisServer(t)
	cli := requireBinary(t, "redis-cli", "redis-tools")
	c := &RedisCluster{t: t}
	for range masters {
		n := StartRedisProcess(t, func(dir string, port int) ([]string, error) {
			// The cluster bus gets a port of its own (cluster-port), as
			// port+10000 may be taken or out of range.
			bus, err := FreePort()
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
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil { //nolint:gosec // redis-cli from PATH, with the nodes started above
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		rdb := n.Client()
		waitFor(t, "cluster_state:ok on "+n.Addr(), func() bool {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return c
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
