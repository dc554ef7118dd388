// Package testkit holds what chatd's tests share: private Redis servers,
// clusters and Sentinels started on loopback ports for one test.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SkipRedisEnv is the environment variable that, set to 1, makes the tests
// that need redis-server skip when it is not installed instead of failing.
const SkipRedisEnv = "CHATD_TEST_SKIP_REDIS"

// waitLimit bounds every wait of the Redis starters.
const waitLimit = 10 * time.Second

// RequireRedisServer returns the path of redis-server. When it is not
// installed the test fails with a message saying to install it, unless
// CHATD_TEST_SKIP_REDIS=1 is set: then the test is skipped. Every test that
// needs redis-server goes through this one policy.
func RequireRedisServer(t testing.TB) string {
	t.Helper()
	return requireBinary(t, "redis-server", "redis-server")
}

// requireBinary applies the policy of RequireRedisServer to a binary of the
// Debian package pkg.
func requireBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(SkipRedisEnv) == "1" {
		t.Skipf("%s is not installed and %s=1: skipping", name, SkipRedisEnv)
	}
	t.Fatalf("this test needs %s in PATH: install it (Debian package %s: apt-get install %s), or set %s=1 to skip the tests that need it",
		name, pkg, pkg, SkipRedisEnv)
	return ""
}

// RedisServer is a private redis-server on a loopback port that a test can
// stop (as a crash would) and start again on the same port. It stops when
// the test ends.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args func(dir string, port int) ([]string, error)

	mu     sync.Mutex // guards the following fields
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// StartRedis starts a private redis-server without persistence and returns
// its address (host:port).
func StartRedis(t testing.TB) string {
	t.Helper()
	return StartRedisServer(t).Addr()
}

// StartRedisServer starts a private redis-server without persistence.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	return StartRedisProcess(t, nil)
}

// StartRedisProcess starts redis-server with the command line that args
// gives for a free port and a directory of its own (nil: a plain server
// without persistence), retrying on another port when the server does not
// come up, and waits until it answers PING.
func StartRedisProcess(t testing.TB, args func(dir string, port int) ([]string, error)) *RedisServer {
	t.Helper()
	r := &RedisServer{t: t, bin: RequireRedisServer(t), dir: t.TempDir(), args: args}
	var lastErr error
	for range 5 { // another process may take the free port first
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r.port = port
		if lastErr = r.tryStart(); lastErr == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("could not start redis-server: %v", lastErr)
	return nil
}

// FreePort asks the kernel for a loopback TCP port that was free a moment
// ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the server's address, host:port.
func (r *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Port is the server's TCP port.
func (r *RedisServer) Port() int { return r.port }

// URL is the server's address as a redis.url setting, database 0.
func (r *RedisServer) URL() string { return "redis://" + r.Addr() + "/0" }

func (r *RedisServer) tryStart() error {
	var out bytes.Buffer
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir}
	if r.args != nil {
		var err error
		if args, err = r.args(r.dir, r.port); err != nil {
			return err
		}
	}
	cmd := exec.Command(r.bin, args...) //nolint:gosec // redis-server from PATH, with the arguments of the test
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var werr error // cmd's exit, once exited is closed
	go func() { werr = cmd.Wait(); close(exited) }()
	client := goredis.NewClient(&goredis.Options{Addr: r.Addr(), DisableIdentity: true, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", werr, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d does not answer: %w", r.port, err)
		}
	}
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	return nil
}

// Stop kills the server (as a crash would) and waits until it is gone. It
// may be called more than once.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// running reports whether the server is started (not stopped).
func (r *RedisServer) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// Restart starts the server again on the same port after Stop.
func (r *RedisServer) Restart() {
	r.t.Helper()
	var err error
	for range 20 {
		if err = r.tryStart(); err == nil {
			return
		}
	}
	r.t.Fatalf("redis-server did not restart on port %d: %v", r.port, err)
}

// Client returns a client of the server with short timeouts and no retries,
// closed when the test ends.
func (r *RedisServer) Client() *goredis.Client {
	c := goredis.NewClient(&goredis.Options{
		Addr:            r.Addr(),
		DialTimeout:     300 * time.Millisecond,
		ReadTimeout:     time.Second,
		WriteTimeout:    time.Second,
		MaxRetries:      -1,
		DisableIdentity: true,
	})
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
