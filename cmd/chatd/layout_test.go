package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// TestStartRefusesTheOldKeyLayout: with keys of the layout before the
// room-tagged one under redis.prefix, chatd does not start, and the error
// names the prefix and what to do; a fresh prefix starts.
func TestStartRefusesTheOldKeyLayout(t *testing.T) {
	rs := startRedis(t)
	client := rs.Client()
	if err := client.SAdd(t.Context(), "oldkeys:{membership}:room:lobby", "alice").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("old-layout")
	cfg.Redis.URL = rs.URL()
	cfg.Redis.Prefix = "oldkeys"
	m, err := newMain(context.Background(), cfg, newSyncBuffer())
	if err == nil {
		_ = m.Close()
		t.Fatal("chatd started on keys of the old layout")
	}
	for _, want := range []string{`redis.prefix "oldkeys"`, "oldkeys:{membership}:room:lobby", "chatd migrate-keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}

	cfg.Redis.Prefix = "newkeys"
	startMain(t, cfg)
	if v, err := client.Get(t.Context(), "newkeys:layout").Result(); err != nil || v != "2" {
		t.Fatalf("newkeys:layout = %q (%v), want 2", v, err)
	}
}

// TestOldKeyLayoutFoundLaterKeepsTheInstanceUnready: when Redis does not
// answer at start, chatd starts unready and checks the layout later; keys
// of the old layout found then keep it unready until they are gone.
func TestOldKeyLayoutFoundLaterKeepsTheInstanceUnready(t *testing.T) {
	rs := startRedis(t)
	rs.Stop()
	cfg := testConfig("late-layout")
	cfg.Redis.URL = rs.URL()
	cfg.Redis.Prefix = "latekeys"
	cfg.Redis.Timeout = 300 * time.Millisecond
	cfg.Presence.TTL = 3 * time.Second // a check each second
	logs := newSyncBuffer()
	m, err := newMain(context.Background(), cfg, logs)
	if err != nil {
		t.Fatalf("newMain with Redis down: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		_ = m.Close()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		_ = m.Close()
		if t.Failed() {
			t.Logf("chatd log:\n%s", logs)
		}
	})
	base := "http://" + m.Addr().String()
	rs.Restart()
	client := rs.Client()
	if err := client.Set(t.Context(), "latekeys:idempotency:x", "pending", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ready := func() error {
		status, body := get(t, base+"/readyz")
		if status != http.StatusOK {
			return fmt.Errorf("/readyz = %d %s", status, body)
		}
		return nil
	}
	// Redis answers and the adapter is ready again, but the layout check
	// refuses the old keys.
	testkit.Eventually(t, waitLimit, func() bool {
		return strings.Contains(logs.String(), "stays unready") && strings.Contains(logs.String(), "latekeys:idempotency:x")
	}, "the later layout check to refuse the old keys")
	waitValue(t, base, 1, "chatd_redis_ready")
	if err := ready(); err == nil {
		t.Fatal("the instance is ready on keys of the old layout")
	}
	if n, _ := client.Exists(t.Context(), "latekeys:layout").Result(); n != 0 {
		t.Fatal("the layout version was written over keys of the old layout")
	}
	if err := client.Del(t.Context(), "latekeys:idempotency:x").Err(); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyEvery(t, 10*time.Second, 100*time.Millisecond, ready, "the instance to be ready once the old keys are gone")
}

// TestMigrateKeysCommand: `chatd migrate-keys` with the instances'
// settings moves the old keys, after which chatd starts on them.
func TestMigrateKeysCommand(t *testing.T) {
	rs := startRedis(t)
	client := rs.Client()
	if err := client.SAdd(t.Context(), "movekeys:{membership}:user:alice", "lobby").Err(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CHATD_REDIS_URL": rs.URL(), "CHATD_REDIS_PREFIX": "movekeys"}
	var out strings.Builder
	if err := run(t.Context(), []string{"migrate-keys"}, func(k string) string { return env[k] }, &out, &out); err != nil {
		t.Fatalf("migrate-keys: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "moved 1 memberships") || !strings.Contains(out.String(), "chatd can start") {
		t.Errorf("migrate-keys said %q", out.String())
	}
	cfg := testConfig("moved")
	cfg.Redis.URL = rs.URL()
	cfg.Redis.Prefix = "movekeys"
	startMain(t, cfg)
	if member, err := client.HExists(t.Context(), "movekeys:{r:lobby}:members", "alice").Result(); err != nil || !member {
		t.Fatalf("alice is not in lobby's members after the move (%v)", err)
	}

	// Without Redis settings there is nothing to move.
	out.Reset()
	err := run(t.Context(), []string{"migrate-keys"}, func(string) string { return "" }, &out, &out)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "redis.url") {
		t.Fatalf("migrate-keys without Redis = %v (exit %d), want a usage error naming redis.url", err, exitCode(err))
	}
}
