package redis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
	goredis "github.com/redis/go-redis/v9"
)

// presenceTestWait bounds the waits of the presence tests that stall a
// script; a broken implementation costs this long instead of hanging.
const presenceTestWait = 10 * time.Second

// presenceTestHook lets a test step into the presence scripts: fn runs in
// place of the script's EVALSHA and calls run to let it through.
type presenceTestHook struct {
	mu  sync.Mutex                                                   // guards fns
	fns map[string]func(ctx context.Context, run func() error) error // by script hash
}

// presenceHooked returns a client of a private Redis with the presence
// scripts loaded (so that they run as EVALSHA only) and a hook on it.
func presenceHooked(t *testing.T) (*goredis.Client, *presenceTestHook) {
	t.Helper()
	client := storeRedisServer(t)
	for _, s := range []*goredis.Script{presenceConnectScript, presenceDisconnectScript, presenceHeartbeatScript,
		presenceReconcileScript, presenceReapScript, presenceCloseScript, presenceExpiredScript} {
		if err := s.Load(t.Context(), client).Err(); err != nil {
			t.Fatal(err)
		}
	}
	h := &presenceTestHook{fns: make(map[string]func(context.Context, func() error) error)}
	client.AddHook(h)
	return client, h
}

// on sets what happens when script runs; nil lets it run.
func (h *presenceTestHook) on(script *goredis.Script, fn func(ctx context.Context, run func() error) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fn == nil {
		delete(h.fns, script.Hash())
		return
	}
	h.fns[script.Hash()] = fn
}

func (h *presenceTestHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *presenceTestHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

func (h *presenceTestHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		args := cmd.Args()
		if len(args) < 2 || !strings.EqualFold(cmd.Name(), "evalsha") {
			return next(ctx, cmd)
		}
		sha, _ := args[1].(string)
		h.mu.Lock()
		fn := h.fns[sha]
		h.mu.Unlock()
		if fn == nil {
			return next(ctx, cmd)
		}
		return fn(ctx, func() error { return next(ctx, cmd) })
	}
}

// A heartbeat stuck on a slow Redis does not hold up Connect and
// Disconnect, and it gives up after the presence timeout rather than the
// heartbeat interval.
func TestRedisStorePresenceSlowHeartbeat(t *testing.T) {
	client, hook := presenceHooked(t)
	ctx := t.Context()
	const timeout = 300 * time.Millisecond
	p := storeNewPresence(t, client, RedisPresenceOptions{Prefix: storeNewPrefix(), InstanceID: "a", Timeout: timeout})

	t.Run("Connect and Disconnect go on", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		heldUntilReleased := false
		hook.on(presenceHeartbeatScript, func(ctx context.Context, run func() error) error {
			close(entered)
			hook.on(presenceHeartbeatScript, nil) // once
			select {
			case <-release:
				mu.Lock()
				heldUntilReleased = true
				mu.Unlock()
			case <-time.After(presenceTestWait):
			}
			return run()
		})
		beatDone := make(chan error, 1)
		go func() { beatDone <- p.beat(context.Background()) }()
		<-entered
		// The heartbeat is stuck in Redis now.
		if _, err := p.Connect(ctx, rooms.User{ID: "alice", Name: "Alice"}, "s1"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Disconnect(ctx, "alice", "s1"); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		stillStuck := !heldUntilReleased
		mu.Unlock()
		close(release)
		if err := <-beatDone; err != nil {
			t.Errorf("heartbeat: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !stillStuck || !heldUntilReleased {
			t.Fatal("Connect and Disconnect waited for the stuck heartbeat")
		}
	})

	t.Run("the heartbeat gives up after the timeout", func(t *testing.T) {
		var left time.Duration // how long the heartbeat had left when it reached Redis
		hook.on(presenceHeartbeatScript, func(ctx context.Context, run func() error) error {
			hook.on(presenceHeartbeatScript, nil)
			if d, ok := ctx.Deadline(); ok {
				left = time.Until(d)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(presenceTestWait):
				return run()
			}
		})
		err := p.beat(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stuck heartbeat: err = %v, want context.DeadlineExceeded", err)
		}
		if left <= 0 || left > timeout {
			t.Errorf("the heartbeat's Redis call had %v left, want at most the %v timeout", left, timeout)
		}
	})
}

// When Disconnect fails in Redis (a blip), the next heartbeat removes the
// socket Redis still holds, and Reap reports its user offline when that was
// their last socket, once, on this instance.
func TestRedisStorePresenceRepairReportsOffline(t *testing.T) {
	client, hook := presenceHooked(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	a := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "a"})
	b := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "b"})
	alice, bob := rooms.User{ID: "alice", Name: "Alice"}, rooms.User{ID: "bob", Name: "Bob"}
	for _, c := range []struct {
		u    rooms.User
		sock string
	}{{alice, "s1"}, {bob, "s2"}, {bob, "s3"}} {
		if _, err := a.Connect(ctx, c.u, c.sock); err != nil {
			t.Fatal(err)
		}
	}
	blip := errors.New("injected: connection reset")
	hook.on(presenceDisconnectScript, func(context.Context, func() error) error { return blip })
	for _, c := range [][2]string{{"alice", "s1"}, {"bob", "s2"}} {
		if _, err := a.Disconnect(ctx, c[0], c[1]); !errors.Is(err, blip) {
			t.Fatalf("Disconnect during the blip: err = %v", err)
		}
	}
	hook.on(presenceDisconnectScript, nil)
	if online, err := b.Online(ctx, []string{"alice", "bob"}); err != nil || len(online) != 2 {
		t.Fatalf("before the heartbeat, Online = %v, %v; want alice and bob (Redis still holds their sockets)", online, err)
	}
	if err := a.beat(ctx); err != nil {
		t.Fatal(err)
	}
	if online, err := b.Online(ctx, []string{"alice", "bob"}); err != nil || !slices.Equal(online, []rooms.User{bob}) {
		t.Fatalf("after the heartbeat, Online = %v, %v; want [bob] (s3 is left)", online, err)
	}
	if got, err := b.Reap(ctx); err != nil || len(got) != 0 {
		t.Errorf("the other instance's Reap = %v, %v; want nothing", got, err)
	}
	if got, err := a.Reap(ctx); err != nil || !slices.Equal(got, []rooms.User{alice}) {
		t.Errorf("Reap = %v, %v; want [alice]", got, err)
	}
	if got, err := a.Reap(ctx); err != nil || len(got) != 0 {
		t.Errorf("a second Reap = %v, %v; want nothing", got, err)
	}
}

// A Connect that Redis has run but that has not returned yet while the
// heartbeat counts the sockets is not taken for a stray socket: the repair
// waits for the calls in flight.
func TestRedisStorePresenceHeartbeatDuringConnect(t *testing.T) {
	client, hook := presenceHooked(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	a := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "a"})
	b := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "b"})
	if _, err := a.Connect(ctx, rooms.User{ID: "alice", Name: "Alice"}, "s1"); err != nil {
		t.Fatal(err)
	}
	ran, beatDone := make(chan struct{}), make(chan struct{})
	hook.on(presenceConnectScript, func(_ context.Context, run func() error) error {
		err := run()
		close(ran)
		// Hold the Connect until the heartbeat is done or waits for it.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		deadline := time.After(presenceTestWait)
		for {
			select {
			case <-beatDone:
				return err
			case <-deadline:
				return err
			case <-tick.C:
			}
			if !a.ops.TryRLock() {
				return err // the heartbeat waits for the calls in flight
			}
			a.ops.RUnlock()
		}
	})
	connected := make(chan error, 1)
	go func() {
		_, err := a.Connect(ctx, rooms.User{ID: "bob", Name: "Bob"}, "s2")
		connected <- err
	}()
	<-ran
	err := a.beat(ctx)
	close(beatDone)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-connected; err != nil {
		t.Fatal(err)
	}
	if online, err := b.Online(ctx, []string{"alice", "bob"}); err != nil || len(online) != 2 {
		t.Fatalf("Online = %v, %v; want alice and bob", online, err)
	}
	if got, err := a.Reap(ctx); err != nil || len(got) != 0 {
		t.Errorf("Reap = %v, %v; want nothing", got, err)
	}
}
