package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SentinelMasterName is the master name the Sentinel of StartSentinel
// monitors (redis.master_name).
const SentinelMasterName = "m"

// RedisSentinel is a master redis-server, a replica of it and a
// redis-sentinel monitoring them, on loopback ports, stopped when the test
// ends.
type RedisSentinel struct {
	t testing.TB
	// Master and Replica are the monitored servers; after Failover the
	// replica is the master.
	Master, Replica *RedisServer
	// Sentinel is the redis-sentinel process.
	Sentinel       *RedisServer
	sentinelClient *goredis.SentinelClient
}

// StartSentinel starts a master, a replica that has synced with it, and
// one Sentinel (quorum 1) that knows both.
func StartSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{t: t}
	s.Master = StartRedisServer(t)
	s.Replica = StartRedisProcess(t, func(dir string, port int) ([]string, error) {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port())}, nil
	})
	replica := s.Replica.Client()
	waitFor(t, "the replica to sync with the master", func() bool {
		info, err := replica.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	// Started after the replica, the Sentinel learns of it from its first
	// INFO to the master rather than ten seconds later.
	s.Sentinel = StartRedisProcess(t, func(dir string, port int) ([]string, error) {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 5000\n",
			port, dir, SentinelMasterName, s.Master.Port())
		// The Sentinel rewrites its configuration file.
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		return []string{conf, "--sentinel"}, nil
	})
	s.sentinelClient = goredis.NewSentinelClient(&goredis.Options{Addr: s.Sentinel.Addr(), DisableIdentity: true})
	t.Cleanup(func() { _ = s.sentinelClient.Close() })
	waitFor(t, "the Sentinel to know the master and its replica", func() bool {
		ctx := context.Background()
		m, err := s.sentinelClient.Master(ctx, SentinelMasterName).Result()
		if err != nil || m["flags"] != "master" || net.JoinHostPort(m["ip"], m["port"]) != s.Master.Addr() {
			return false
		}
		replicas, err := s.sentinelClient.Replicas(ctx, SentinelMasterName).Result()
		return err == nil && len(replicas) == 1 && replicas[0]["flags"] == "slave" &&
			replicas[0]["master-link-status"] == "ok"
	})
	return s
}

// Client returns a failover client built as chatd builds it for
// redis.addrs with redis.master_name; it is closed when the test ends.
func (s *RedisSentinel) Client() goredis.UniversalClient {
	u := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 []string{s.Sentinel.Addr()},
		MasterName:            SentinelMasterName,
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

// Failover has the Sentinel promote the replica (SENTINEL FAILOVER) and
// waits until the Sentinel names it and it runs as the master. The old
// master keeps running as a master until the Sentinel next checks it (up to
// ten seconds) and turns it into a replica.
func (s *RedisSentinel) Failover(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	// Every write so far has reached the replica.
	if err := s.Master.Client().Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatalf("WAIT: %v", err)
	}
	waitFor(t, "SENTINEL FAILOVER to be accepted", func() bool {
		// Refused (NOGOODSLAVE) while the Sentinel has not yet checked the
		// replica.
		return s.sentinelClient.Failover(ctx, SentinelMasterName).Err() == nil
	})
	newMaster := s.Replica.Client()
	waitFor(t, "the replica to be the master", func() bool {
		addr, err := s.sentinelClient.GetMasterAddrByName(ctx, SentinelMasterName).Result()
		if err != nil || len(addr) != 2 || net.JoinHostPort(addr[0], addr[1]) != s.Replica.Addr() {
			return false
		}
		role, err := newMaster.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(role, "role:master")
	})
}
