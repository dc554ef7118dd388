package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// storeRedisServer starts a private redis-server on a free loopback port for
// the test, waits until it says it accepts connections and returns a client
// of it. Both stop when the test ends.
func storeRedisServer(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("the Redis store tests need redis-server in PATH (apt-get install redis-server): %v", err)
	}
	// Another process can take the free port before redis-server binds it;
	// then redis-server exits and we try another port.
	var lastErr error
	for range 5 {
		client, err := storeTryRedisServer(t, bin)
		if err == nil {
			return client
		}
		lastErr = err
	}
	t.Fatalf("could not start redis-server: %v", lastErr)
	return nil
}

func storeTryRedisServer(t *testing.T, bin string) (*redis.Client, error) {
	port, err := storeFreePort()
	if err != nil {
		return nil, err
	}
	log := &storeServerLog{ready: make(chan struct{})}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--loglevel", "notice", "--logfile", "")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// redis-server logs "Ready to accept connections" once it listens, and
	// exits when it cannot.
	select {
	case <-log.ready:
	case err := <-exited:
		return nil, fmt.Errorf("redis-server on port %d did not start (%v):\n%s", port, err, log)
	}
	client := redis.NewClient(&redis.Options{
		Addr:            "127.0.0.1:" + strconv.Itoa(port),
		DialTimeout:     time.Second,
		ReadTimeout:     5 * time.Second,
		WriteTimeout:    5 * time.Second,
		DisableIdentity: true,
	})
	t.Cleanup(func() {
		_ = client.Close()
		_ = cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis-server on port %d does not answer: %w", port, err)
	}
	return client, nil
}

// storeFreePort returns a loopback TCP port that was free a moment ago.
func storeFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// storeServerLog collects a redis-server's output and closes ready when the
// server says it accepts connections.
type storeServerLog struct {
	ready chan struct{}

	mu   sync.Mutex // guards the following fields
	buf  bytes.Buffer
	seen bool
}

func (l *storeServerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<16 {
		l.buf.Write(p)
	}
	if !l.seen && strings.Contains(l.buf.String(), "Ready to accept connections") {
		l.seen = true
		close(l.ready)
	}
	return len(p), nil
}

func (l *storeServerLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
