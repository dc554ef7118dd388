package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
	goredis "github.com/redis/go-redis/v9"
)

// storeTestHistorySize is the history size of the stores under test.
const storeTestHistorySize = 7

// storePrefixes numbers the key prefixes of the tests, so that each set of
// stores sees only its own data.
var storePrefixes atomic.Int64

func storeNewPrefix() string { return fmt.Sprintf("test%d", storePrefixes.Add(1)) }

// storeNewStores returns the four Redis stores under prefix, as cmd/chatd
// builds them: the history is a RedisMemberHistory. The presence store is
// started and closed when the test ends.
func storeNewStores(t *testing.T, client goredis.UniversalClient, prefix string) rooms.Stores {
	t.Helper()
	m, err := NewRedisMembership(client, RedisMembershipOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	p := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "instance-" + storeNewPrefix()})
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, err := NewRedisHistory(client, RedisHistoryOptions{Prefix: prefix, Size: storeTestHistorySize})
	if err != nil {
		t.Fatal(err)
	}
	i, err := NewRedisIdempotency(client, RedisIdempotencyOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	mh, err := NewRedisMemberHistory(h, m, i)
	if err != nil {
		t.Fatal(err)
	}
	return rooms.Stores{Membership: m, Presence: p, History: mh, Idempotency: i}
}

// storeNewPresence returns a presence store that is closed when the test
// ends.
func storeNewPresence(t *testing.T, client goredis.UniversalClient, opts RedisPresenceOptions) *RedisPresence {
	t.Helper()
	p, err := NewRedisPresence(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// storeSuiteOptions are the roomstest options of storeNewStores.
var storeSuiteOptions = roomstest.Options{HistorySize: storeTestHistorySize, MemberHistory: true, SendStore: true}

func TestRedisStores(t *testing.T) {
	client := storeRedisServer(t)
	roomstest.TestStores(t, func(t *testing.T) rooms.Stores {
		return storeNewStores(t, client, storeNewPrefix())
	}, storeSuiteOptions)
}

func TestRedisMemberHistoryNeedsItsStoresOnOneClient(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = client.Close() })
	other := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = other.Close() })
	newStores := func(c goredis.UniversalClient) (*RedisHistory, *RedisMembership, *RedisIdempotency) {
		h, err := NewRedisHistory(c, RedisHistoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewRedisMembership(c, RedisMembershipOptions{})
		if err != nil {
			t.Fatal(err)
		}
		i, err := NewRedisIdempotency(c, RedisIdempotencyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return h, m, i
	}
	h, m, i := newStores(client)
	otherH, _, otherI := newStores(other)
	for _, tc := range []struct {
		name string
		h    *RedisHistory
		m    *RedisMembership
		i    *RedisIdempotency
		want string
	}{
		{"no membership", h, nil, i, "needs a history, a membership and an idempotency store"},
		{"no idempotency", h, m, nil, "needs a history, a membership and an idempotency store"},
		{"two clients", otherH, m, i, "share one Redis client"},
		{"idempotency on another client", h, m, otherI, "share one Redis client"},
	} {
		if _, err := NewRedisMemberHistory(tc.h, tc.m, tc.i); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewRedisMemberHistory error = %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// storeClock is a settable clock for presence stores.
type storeClock struct{ ms atomic.Int64 }

func storeNewClock() *storeClock {
	c := &storeClock{}
	c.ms.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	return c
}

func (c *storeClock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *storeClock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func (c *storeClock) Set(from *storeClock, d time.Duration) {
	c.ms.Store(from.ms.Load() + d.Milliseconds())
}

func storeUserIDs(us []rooms.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	slices.Sort(out)
	return out
}

func TestRedisStorePresenceReapsCrashedInstance(t *testing.T) {
	storePresenceReapScenario(t, storeRedisServer(t))
}

// storePresenceReapScenario has two live instances reap, concurrently, the
// sockets of an instance that crashed, on client's Redis: each user of the
// crashed instance is reported once, and only users with a socket elsewhere
// stay online.
func storePresenceReapScenario(t *testing.T, client goredis.UniversalClient) {
	ctx := t.Context()
	prefix := storeNewPrefix()
	crashedClock, liveClock := storeNewClock(), storeNewClock()
	// The crashed instance records sockets and then never renews its entry
	// (it is never started: no heartbeat).
	crashed := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "crashed", Now: crashedClock.Now})
	reapers := []*RedisPresence{
		storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "reaper-1", Now: liveClock.Now}),
		storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "reaper-2", Now: liveClock.Now}),
	}
	for _, r := range reapers {
		r.reapBatch = 3 // many small steps, so that the two reapers interleave
	}

	const users = 60
	var want []string
	names := make(map[string]string)
	for i := range users {
		u := rooms.User{ID: fmt.Sprintf("u%02d", i), Name: fmt.Sprintf("User %d", i)}
		want = append(want, u.ID)
		names[u.ID] = u.Name
		for s := range 2 {
			if _, err := crashed.Connect(ctx, u, fmt.Sprintf("%s-s%d", u.ID, s)); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(want)
	// One user also has a socket on a live instance, another only there.
	shared, local := rooms.User{ID: "shared", Name: "Shared"}, rooms.User{ID: "local", Name: "Local"}
	for _, c := range []struct {
		p    *RedisPresence
		u    rooms.User
		sock string
	}{{crashed, shared, "x1"}, {reapers[0], shared, "x2"}, {reapers[1], local, "x3"}} {
		if _, err := c.p.Connect(ctx, c.u, c.sock); err != nil {
			t.Fatal(err)
		}
	}

	// Within the TTL the crashed instance counts as alive. The reapers
	// renew their own entries as their heartbeat would.
	liveClock.Set(crashedClock, DefaultPresenceTTL)
	for _, r := range reapers {
		if err := r.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := reapers[0].Reap(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Reap within the TTL = %v, %v; want nothing", got, err)
	}

	liveClock.Set(crashedClock, DefaultPresenceTTL+time.Millisecond)
	results := make([][]rooms.User, len(reapers))
	errs := make([]error, len(reapers))
	var wg sync.WaitGroup
	for i, r := range reapers {
		wg.Go(func() { results[i], errs[i] = r.Reap(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := storeUserIDs(append(slices.Clone(results[0]), results[1]...))
	if !slices.Equal(got, want) {
		t.Fatalf("two reapers reported %d users %v; want each of the %d users of the crashed instance once", len(got), got, users)
	}
	for _, u := range append(results[0], results[1]...) {
		if u.Name != names[u.ID] {
			t.Errorf("reaped %s with name %q, want %q", u.ID, u.Name, names[u.ID])
		}
	}

	online, err := reapers[0].Online(ctx, append([]string{"shared", "local"}, want...))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(online, []rooms.User{shared, local}) {
		t.Fatalf("after the reap, Online = %v; want only shared and local", online)
	}
	for _, r := range reapers {
		if got, err := r.Reap(ctx); err != nil || len(got) != 0 {
			t.Fatalf("a second Reap = %v, %v; want nothing", got, err)
		}
	}
	// The crashed instance's entry is gone.
	if n, err := client.Exists(ctx, crashed.instanceKey("crashed")).Result(); err != nil || n != 0 {
		t.Fatalf("the crashed instance's sockets are still stored (%d, %v)", n, err)
	}
	if _, err := client.ZScore(ctx, crashed.instancesKey(), "crashed").Result(); !errors.Is(err, goredis.Nil) {
		t.Fatalf("the crashed instance is still listed: %v", err)
	}
	// The shared user's last socket going offline is reported as last.
	if last, err := reapers[0].Disconnect(ctx, "shared", "x2"); err != nil || !last {
		t.Fatalf("Disconnect of shared's last socket = %v, %v; want true", last, err)
	}
}

func TestRedisStorePresenceHeartbeatKeepsInstanceAlive(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	clockA, clockB := storeNewClock(), storeNewClock()
	a := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "a", Now: clockA.Now})
	b := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "b", Now: clockB.Now})
	alice := rooms.User{ID: "alice", Name: "Alice"}
	if _, err := a.Connect(ctx, alice, "s1"); err != nil {
		t.Fatal(err)
	}
	clockA.Add(20 * time.Second)
	if err := a.beat(ctx); err != nil {
		t.Fatal(err)
	}
	clockB.Set(clockA, DefaultPresenceTTL-time.Second)
	if got, err := b.Reap(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Reap before the renewed entry expired = %v, %v; want nothing", got, err)
	}
	clockB.Set(clockA, DefaultPresenceTTL+time.Millisecond)
	got, err := b.Reap(ctx)
	if err != nil || !slices.Equal(got, []rooms.User{alice}) {
		t.Fatalf("Reap after the renewed entry expired = %v, %v; want [alice]", got, err)
	}
}

func TestRedisStorePresenceRestoresReapedSockets(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	clockA, clockB := storeNewClock(), storeNewClock()
	a := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "a", Now: clockA.Now})
	b := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "b", Now: clockB.Now})
	alice, bob := rooms.User{ID: "alice", Name: "Alice"}, rooms.User{ID: "bob", Name: "Bob"}
	for _, c := range []struct {
		u    rooms.User
		sock string
	}{{alice, "s1"}, {bob, "s2"}, {bob, "s3"}} {
		if _, err := a.Connect(ctx, c.u, c.sock); err != nil {
			t.Fatal(err)
		}
	}
	// Instance a stalls past its TTL; b reaps its sockets.
	clockB.Set(clockA, DefaultPresenceTTL+time.Second)
	got, err := b.Reap(ctx)
	if err != nil || !slices.Equal(storeUserIDs(got), []string{"alice", "bob"}) {
		t.Fatalf("Reap = %v, %v; want alice and bob", got, err)
	}
	// a wakes up: its next heartbeat puts its sockets back.
	clockA.Set(clockB, time.Second)
	if err := a.beat(ctx); err != nil {
		t.Fatal(err)
	}
	online, err := b.Online(ctx, []string{"alice", "bob"})
	if err != nil || !slices.Equal(online, []rooms.User{alice, bob}) {
		t.Fatalf("after a's heartbeat, Online = %v, %v; want alice and bob", online, err)
	}
	if got, err := b.Reap(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Reap after a's heartbeat = %v, %v; want nothing", got, err)
	}
	if last, err := a.Disconnect(ctx, "bob", "s2"); err != nil || last {
		t.Fatalf("Disconnect(bob, s2) = %v, %v; want false (s3 is left)", last, err)
	}
	if last, err := a.Disconnect(ctx, "bob", "s3"); err != nil || !last {
		t.Fatalf("Disconnect(bob, s3) = %v, %v; want true", last, err)
	}

	// A socket that Redis holds but the instance does not (a call that
	// failed after Redis ran it) is removed by the next heartbeat.
	if _, err := client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, a.instanceKey("a"), "ghost", "carol")
		p.HIncrBy(ctx, a.countsKey(), "carol", 1)
		p.HSet(ctx, a.namesKey(), "carol", "Carol")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if online, _ := b.Online(ctx, []string{"carol"}); len(online) != 1 {
		t.Fatalf("the planted socket did not make carol online: %v", online)
	}
	if err := a.beat(ctx); err != nil {
		t.Fatal(err)
	}
	if online, err := b.Online(ctx, []string{"alice", "carol"}); err != nil || !slices.Equal(online, []rooms.User{alice}) {
		t.Fatalf("after a's heartbeat, Online(alice, carol) = %v, %v; want [alice]", online, err)
	}
	// carol went offline with that socket: a's Reap reports her, once.
	if got, err := a.Reap(ctx); err != nil || !slices.Equal(got, []rooms.User{{ID: "carol", Name: "Carol"}}) {
		t.Fatalf("a's Reap after the heartbeat = %v, %v; want [carol]", got, err)
	}
	if got, err := a.Reap(ctx); err != nil || len(got) != 0 {
		t.Fatalf("a's second Reap = %v, %v; want nothing", got, err)
	}
}

func TestRedisStorePresenceStartClose(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	a := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "a", TTL: time.Second})
	b := storeNewPresence(t, client, RedisPresenceOptions{Prefix: prefix, InstanceID: "b"})
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err == nil {
		t.Fatal("a second Start succeeded")
	}
	bob := rooms.User{ID: "bob", Name: "Bob"}
	if _, err := a.Connect(ctx, bob, "s1"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Reap(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Reap while a runs = %v, %v; want nothing", got, err)
	}
	// Closing with a socket left hands it to the others at once.
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if _, err := a.Connect(ctx, bob, "s2"); err == nil {
		t.Fatal("Connect after Close succeeded")
	}
	if err := a.Start(ctx); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	got, err := b.Reap(ctx)
	if err != nil || !slices.Equal(got, []rooms.User{bob}) {
		t.Fatalf("Reap after a closed = %v, %v; want [bob]", got, err)
	}
	// An instance that closes with no socket left leaves no entry.
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := client.ZCard(ctx, b.instancesKey()).Result(); err != nil || n != 0 {
		t.Fatalf("after both closed, %d instances are listed (%v)", n, err)
	}
}

// storeHashTag returns the part of key that Redis Cluster hashes.
func storeHashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestRedisStoreKeys(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	const prefix = "keys-test"
	st := storeNewStores(t, client, prefix)
	u := rooms.User{ID: "ali{ce}", Name: "Alice"}
	if _, err := st.Membership.Join(ctx, u.ID, "lobby", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Presence.Connect(ctx, u, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.History.Append(ctx, rooms.Message{Room: "lobby", UserID: u.ID, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Idempotency.Claim(ctx, "lobby\x00ali{ce}\x00c1"); err != nil {
		t.Fatal(err)
	}

	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if len(keys) < 8 {
		t.Fatalf("only %d keys were written: %q", len(keys), keys)
	}
	tags := make(map[string][]string) // hash tag -> keys
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+":") {
			t.Errorf("key %q does not start with the prefix %q", k, prefix+":")
		}
		tags[storeHashTag(k)] = append(tags[storeHashTag(k)], k)
	}
	// The keys that one script touches must share a Redis Cluster slot:
	// each group's keys all have the group's tag, and no other key has it.
	for _, group := range []struct {
		tag  string
		keys []string
	}{
		{"presence", nil}, // checked by count: instance keys carry ids
		{"r:lobby", []string{"keys-test:{r:lobby}:members", "keys-test:{r:lobby}:history", "keys-test:{r:lobby}:idem:lobby\x00ali{ce}\x00c1"}},
		{"u:ali{ce", []string{"keys-test:{u:ali{ce}}:rooms", "keys-test:{u:ali{ce}}:clock"}},
	} {
		got := slices.Sorted(slices.Values(tags[group.tag]))
		if group.keys == nil {
			if len(got) < 2 {
				t.Errorf("{%s} tags %q; want several keys", group.tag, got)
			}
			continue
		}
		if want := slices.Sorted(slices.Values(group.keys)); !slices.Equal(got, want) {
			t.Errorf("{%s} tags %q; want %q (all tags: %q)", group.tag, got, want, slices.Sorted(maps.Keys(tags)))
		}
	}

	// Stores under another prefix see none of it.
	other := storeNewStores(t, client, "other")
	if rs, err := other.Membership.Rooms(ctx, u.ID); err != nil || len(rs) != 0 {
		t.Errorf("another prefix sees rooms %v (%v)", rs, err)
	}
	if on, err := other.Presence.Online(ctx, []string{u.ID}); err != nil || len(on) != 0 {
		t.Errorf("another prefix sees online users %v (%v)", on, err)
	}
	if p, err := other.History.Page(ctx, "lobby", rooms.Query{Limit: 10}); err != nil || len(p.Messages) != 0 {
		t.Errorf("another prefix sees messages %v (%v)", p.Messages, err)
	}
	if _, claimed, err := other.Idempotency.Claim(ctx, "lobby\x00ali{ce}\x00c1"); err != nil || !claimed {
		t.Errorf("another prefix sees the claim (claimed %v, %v)", claimed, err)
	}
}

func TestRedisStoreHistoryIDsGrowAcrossInstances(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	var hs []*RedisHistory
	for range 2 {
		h, err := NewRedisHistory(client, RedisHistoryOptions{Prefix: prefix, Size: 100})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	var prev rooms.MessageID
	for i := range 20 {
		m, err := hs[i%2].Append(ctx, rooms.Message{Room: "r", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		id, ok := rooms.ParseID(m.ID)
		if !ok || !prev.Less(id) {
			t.Fatalf("message %d got id %q after %s", i, m.ID, prev)
		}
		prev = id
	}
	p, err := hs[0].Page(ctx, "r", rooms.Query{Limit: 100})
	if err != nil || len(p.Messages) != 20 {
		t.Fatalf("Page holds %d messages (%v), want 20", len(p.Messages), err)
	}
}

func TestRedisStoreOptions(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = client.Close() })
	cases := []struct {
		name string
		make func() error
		want string // part of the error; empty: no error
	}{
		{"defaults", func() error {
			_, err := NewRedisMembership(client, RedisMembershipOptions{})
			return err
		}, ""},
		{"no client", func() error {
			_, err := NewRedisHistory(nil, RedisHistoryOptions{})
			return err
		}, "Redis client is required"},
		{"brace in prefix", func() error {
			_, err := NewRedisMembership(client, RedisMembershipOptions{Prefix: "a{b}"})
			return err
		}, "must not contain '{' or '}'"},
		{"negative history size", func() error {
			_, err := NewRedisHistory(client, RedisHistoryOptions{Size: -1})
			return err
		}, "history size -1"},
		{"presence TTL above the bound", func() error {
			_, err := NewRedisPresence(client, RedisPresenceOptions{TTL: 2 * time.Minute})
			return err
		}, "presence TTL 2m0s"},
		{"heartbeat above half the TTL", func() error {
			_, err := NewRedisPresence(client, RedisPresenceOptions{TTL: 10 * time.Second, Heartbeat: 6 * time.Second})
			return err
		}, "heartbeat 6s"},
		{"negative presence timeout", func() error {
			_, err := NewRedisPresence(client, RedisPresenceOptions{Timeout: -time.Second})
			return err
		}, "presence timeout -1s"},
		{"presence without instance id", func() error {
			_, err := NewRedisPresence(client, RedisPresenceOptions{})
			return err
		}, "InstanceID is required"},
		{"negative idempotency TTL", func() error {
			_, err := NewRedisIdempotency(client, RedisIdempotencyOptions{TTL: -time.Second})
			return err
		}, "idempotency TTL -1s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.make()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestRedisStoreCallsHonourContext(t *testing.T) {
	client := storeRedisServer(t)
	st := storeNewStores(t, client, storeNewPrefix())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Join":       func() error { _, err := st.Membership.Join(ctx, "u", "r", 1); return err },
		"Leave":      func() error { _, err := st.Membership.Leave(ctx, "u", "r"); return err },
		"Rooms":      func() error { _, err := st.Membership.Rooms(ctx, "u"); return err },
		"IsMember":   func() error { _, err := st.Membership.IsMember(ctx, "u", "r"); return err },
		"Members":    func() error { _, err := st.Membership.Members(ctx, "r"); return err },
		"Connect":    func() error { _, err := st.Presence.Connect(ctx, rooms.User{ID: "u"}, "s"); return err },
		"Disconnect": func() error { _, err := st.Presence.Disconnect(ctx, "u", "s"); return err },
		"Online":     func() error { _, err := st.Presence.Online(ctx, []string{"u"}); return err },
		"Reap":       func() error { _, err := st.Presence.Reap(ctx); return err },
		"Append":     func() error { _, err := st.History.Append(ctx, rooms.Message{Room: "r", Text: "x"}); return err },
		"Page":       func() error { _, err := st.History.Page(ctx, "r", rooms.Query{Limit: 1}); return err },
		"Page after": func() error { _, err := st.History.Page(ctx, "r", rooms.Query{After: "0-0", Limit: 1}); return err },
		"Claim":      func() error { _, _, err := st.Idempotency.Claim(ctx, "k"); return err },
		"Complete":   func() error { return st.Idempotency.Complete(ctx, "k", rooms.Message{}) },
		"Release":    func() error { return st.Idempotency.Release(ctx, "k") },
	}
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		if err := calls[name](); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", name, err)
		}
	}
}
