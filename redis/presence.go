package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/rooms"
)

var _ rooms.Presence = (*RedisPresence)(nil)

// Defaults and bounds of [RedisPresenceOptions].
const (
	// DefaultPresenceTTL is how long an instance's sockets count as connected
	// after its last heartbeat.
	DefaultPresenceTTL = 30 * time.Second
	// MaxPresenceTTL bounds the TTL, and so how long the users of a crashed
	// instance can stay online.
	MaxPresenceTTL = 60 * time.Second
	// DefaultPresenceTimeout bounds the Redis calls of one heartbeat.
	DefaultPresenceTimeout = 2 * time.Second
)

// RedisPresenceOptions configures a [RedisPresence].
type RedisPresenceOptions struct {
	// Prefix starts every key; empty means [DefaultStorePrefix]. It may not
	// contain '{' or '}'.
	Prefix string
	// Logger receives heartbeat failures and repairs; nil discards them.
	Logger *slog.Logger
	// InstanceID names this process's entry (the `instance.id` setting). It
	// is required and must differ between all instances that share the
	// prefix.
	InstanceID string
	// TTL is how long this instance's sockets count as connected after its
	// last heartbeat, at most [MaxPresenceTTL]; 0 means
	// [DefaultPresenceTTL].
	TTL time.Duration
	// Heartbeat is the time between two renewals of the entry, at most half
	// the TTL; 0 means a third of the TTL.
	Heartbeat time.Duration
	// Timeout bounds the Redis calls of one heartbeat (the renewal and, when
	// needed, the repair of this instance's sockets), so that a slow Redis
	// delays Connect and Disconnect at most this long while a repair runs;
	// 0 means [DefaultPresenceTimeout]. chatd passes redis.timeout.
	Timeout time.Duration
	// Now, when set, is the clock that dates heartbeats and decides expiry
	// (tests use it). When nil the Redis server's clock does, so that the
	// instances' clocks need not agree.
	Now func() time.Time
}

// RedisPresence is the [rooms.Presence] of a cluster. Each instance records
// its own sockets under an entry that it renews with a heartbeat (see
// [RedisPresence.Start]); when an instance stops renewing, any other
// instance's [RedisPresence.Reap] removes its sockets and reports the users
// left without one.
//
// Keys, all with the hash tag "{presence}" because Connect, Disconnect and
// Reap update an instance's sockets and the users' socket counts in one
// script (so all presence sits on one Redis Cluster shard):
//
//	<prefix>:{presence}:instances         sorted set: instance id -> expiry (Unix ms)
//	<prefix>:{presence}:instance:<id>     hash: socket id -> user id
//	<prefix>:{presence}:sockets           hash: user id -> connected sockets, all instances
//	<prefix>:{presence}:names             hash: user id -> display name of an online user
//
// A user is online while their count is above zero. Every change of a
// socket and of its user's count happens in one script, so concurrent
// reapers remove each socket once and report each user once.
//
// Call Disconnect for every socket whose Connect succeeded.
type RedisPresence struct {
	client    goredis.UniversalClient
	keys      string // "<prefix>:{presence}:"
	instance  string
	ttl       time.Duration
	heartbeat time.Duration
	timeout   time.Duration    // bounds one heartbeat's Redis calls
	now       func() time.Time // nil: the Redis server's clock
	log       *slog.Logger
	reapBatch int // sockets removed per reap script call

	// ops is held shared by Connect and Disconnect, and alone by a
	// heartbeat that repairs the entry, so that the repair sees no change in
	// flight. The renewal itself runs without it (see beat).
	ops sync.RWMutex
	// opsRunning counts the Connect and Disconnect calls in flight and
	// opsStarted those begun so far. A call raises opsRunning before
	// opsStarted, so a heartbeat that reads opsStarted then opsRunning
	// before its renewal, and opsStarted again after it, notices any call
	// that overlapped the renewal (see beat).
	opsRunning atomic.Int64
	opsStarted atomic.Uint64

	mu      sync.Mutex            // guards the following fields
	sockets map[string]rooms.User // the sockets this instance recorded
	offline []rooms.User          // users a repair left without a socket, for the next Reap
	started bool                  // Start succeeded
	closed  bool                  // Close was called
	cancel  context.CancelFunc    // stops the heartbeat loop
	done    chan struct{}         // closed when the heartbeat loop ended
}

// NewRedisPresence returns a [RedisPresence] on client. Call Start to begin
// the heartbeat and Close to end it.
func NewRedisPresence(client goredis.UniversalClient, opts RedisPresenceOptions) (*RedisPresence, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultPresenceTTL
	}
	if ttl < 10*time.Millisecond || ttl > MaxPresenceTTL {
		return nil, fmt.Errorf("redis: presence TTL %v must be from 10ms to %v", ttl, MaxPresenceTTL)
	}
	beat := opts.Heartbeat
	if beat == 0 {
		beat = ttl / 3
	}
	if beat <= 0 || beat > ttl/2 {
		return nil, fmt.Errorf("redis: presence heartbeat %v must be above 0 and at most half the TTL (%v)", beat, ttl/2)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultPresenceTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("redis: presence timeout %v must be above 0", timeout)
	}
	id := opts.InstanceID
	if id == "" {
		return nil, errors.New("redis: presence: InstanceID is required (the instance.id setting, CHATD_INSTANCE_ID)")
	}
	return &RedisPresence{
		client:    client,
		keys:      prefix + ":{presence}:",
		instance:  id,
		ttl:       ttl,
		heartbeat: beat,
		timeout:   timeout,
		now:       opts.Now,
		log:       logger.With("instance", id),
		reapBatch: 1000,
		sockets:   make(map[string]rooms.User),
	}, nil
}

// InstanceID returns the id under which this instance records its sockets.
func (p *RedisPresence) InstanceID() string { return p.instance }

func (p *RedisPresence) instancesKey() string         { return p.keys + "instances" }
func (p *RedisPresence) instanceKey(id string) string { return p.keys + "instance:" + id }
func (p *RedisPresence) countsKey() string            { return p.keys + "sockets" }
func (p *RedisPresence) namesKey() string             { return p.keys + "names" }

// scriptKeys returns the keys of the scripts that change instance id's
// sockets, in the order they expect.
func (p *RedisPresence) scriptKeys(id string) []string {
	return []string{p.instancesKey(), p.instanceKey(id), p.countsKey(), p.namesKey()}
}

// nowArg is the clock argument of the scripts: Unix milliseconds, or 0 for
// the Redis server's clock.
func (p *RedisPresence) nowArg() int64 {
	if p.now == nil {
		return 0
	}
	return p.now().UnixMilli()
}

// errPresenceClosed answers a Connect after Close.
var errPresenceClosed = errors.New("redis: the presence store is closed")

// Start records this instance's entry once, so that a Redis failure shows at
// once, and then renews it every Heartbeat until Close. It fails when
// called twice or after Close.
func (p *RedisPresence) Start(ctx context.Context) error {
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return errPresenceClosed
	case p.started:
		p.mu.Unlock()
		return errors.New("redis: the presence store was started already")
	}
	p.started = true
	p.mu.Unlock()
	if err := p.beat(ctx); err != nil {
		p.mu.Lock()
		p.started = false
		p.mu.Unlock()
		return fmt.Errorf("redis: presence heartbeat: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPresenceClosed
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go p.loop(loopCtx, p.done)
	return nil
}

// loop renews the entry every heartbeat until ctx ends.
func (p *RedisPresence) loop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(p.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.beat(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("presence heartbeat failed; the users of this instance go offline elsewhere if it keeps failing",
				"ttl", p.ttl, "err", err)
		}
	}
}

// beat renews the entry, within the presence timeout. When the sockets
// recorded in Redis differ from those of this instance (other instances
// reaped them while this one was stalled, or a failed call left one
// behind), it restores them.
//
// The renewal runs while Connect and Disconnect go on, so that a slow Redis
// does not hold them up; it also counts the sockets Redis holds, which is
// compared with this instance's count only when no call overlapped it (see
// opsRunning). Otherwise, and when the counts differ, repair compares again
// with the calls held off.
func (p *RedisPresence) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	started := p.opsStarted.Load()
	idle := p.opsRunning.Load() == 0
	p.mu.Lock()
	have := len(p.sockets)
	p.mu.Unlock()
	lapsed, held, err := p.renew(ctx)
	if err != nil {
		return err
	}
	if lapsed && have > 0 {
		p.log.Warn("presence heartbeat came after this instance's entry had expired; others may have reported its users offline",
			"ttl", p.ttl)
	}
	if idle && p.opsStarted.Load() == started && held == int64(have) {
		return nil
	}
	return p.repair(ctx)
}

// renew runs the heartbeat script: it reports whether the entry had expired
// and how many sockets Redis holds for this instance.
func (p *RedisPresence) renew(ctx context.Context) (lapsed bool, held int64, err error) {
	res, err := presenceHeartbeatScript.Run(ctx, p.client, p.scriptKeys(p.instance)[:2],
		p.nowArg(), p.ttl.Milliseconds(), p.instance).Int64Slice()
	if err != nil {
		return false, 0, err
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redis: presence heartbeat answered %v", res)
	}
	return res[0] == 1, res[1], nil
}

// repair makes the sockets Redis holds for this instance exactly those of
// this instance, with Connect and Disconnect held off (for at most the
// presence timeout, ctx's). The users it leaves without a socket anywhere
// are reported by the next Reap, so that the server announces them offline.
func (p *RedisPresence) repair(ctx context.Context) error {
	p.ops.Lock()
	defer p.ops.Unlock()
	_, held, err := p.renew(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	want := maps.Clone(p.sockets)
	p.mu.Unlock()
	if held == int64(len(want)) {
		return nil
	}
	args := make([]any, 0, 3+3*len(want))
	args = append(args, p.nowArg(), p.ttl.Milliseconds(), p.instance)
	for sid, u := range want {
		args = append(args, sid, u.ID, u.Name)
	}
	res, err := presenceReconcileScript.Run(ctx, p.client, p.scriptKeys(p.instance), args...).Slice()
	if err != nil {
		return err
	}
	if len(res) < 2 || len(res)%2 != 0 {
		return fmt.Errorf("redis: presence repair answered %d values", len(res))
	}
	added, _ := res[0].(int64)
	removed, _ := res[1].(int64)
	var gone []rooms.User
	for i := 2; i < len(res); i += 2 {
		uid, _ := res[i].(string)
		name, _ := res[i+1].(string)
		gone = append(gone, rooms.User{ID: uid, Name: name})
	}
	if len(gone) > 0 {
		p.mu.Lock()
		p.offline = append(p.offline, gone...)
		p.mu.Unlock()
	}
	p.log.Warn("restored this instance's sockets in Redis", "added", added, "removed", removed, "offline", len(gone))
	return nil
}

// track counts a Connect or Disconnect in flight; call the function it
// returns when the call's changes are done.
func (p *RedisPresence) track() func() {
	p.opsRunning.Add(1)
	p.opsStarted.Add(1)
	return func() { p.opsRunning.Add(-1) }
}

// Close stops the heartbeat and hands this instance's remaining sockets to
// the other instances: it marks the entry expired so that their next Reap
// reports those users offline. Close is idempotent; after it Connect fails.
func (p *RedisPresence) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	n, err := presenceCloseScript.Run(ctx, p.client, p.scriptKeys(p.instance)[:2], p.instance).Int64()
	if err != nil {
		return fmt.Errorf("redis: close presence: %w", err)
	}
	if n > 0 {
		p.log.Info("presence closed with sockets still recorded; other instances will report their users offline", "sockets", n)
	}
	return nil
}

// Connect implements [rooms.Presence].
func (p *RedisPresence) Connect(ctx context.Context, u rooms.User, socketID string) (bool, error) {
	p.ops.RLock()
	defer p.ops.RUnlock()
	defer p.track()()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return false, errPresenceClosed
	}
	n, err := presenceConnectScript.Run(ctx, p.client, p.scriptKeys(p.instance),
		p.nowArg(), p.ttl.Milliseconds(), p.instance, socketID, u.ID, u.Name).Int64()
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	p.sockets[socketID] = u
	p.mu.Unlock()
	return n == 1, nil
}

// Disconnect implements [rooms.Presence]. A socket of another user id, or
// one that is not recorded, changes nothing.
func (p *RedisPresence) Disconnect(ctx context.Context, userID, socketID string) (bool, error) {
	p.ops.RLock()
	defer p.ops.RUnlock()
	defer p.track()()
	p.mu.Lock()
	if u, ok := p.sockets[socketID]; ok && u.ID == userID {
		delete(p.sockets, socketID)
	}
	p.mu.Unlock()
	n, err := presenceDisconnectScript.Run(ctx, p.client, p.scriptKeys(p.instance), socketID, userID).Int64()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Online implements [rooms.Presence].
func (p *RedisPresence) Online(ctx context.Context, userIDs []string) ([]rooms.User, error) {
	out := make([]rooms.User, 0, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	var counts, names *goredis.SliceCmd
	_, err := p.client.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
		counts = pipe.HMGet(ctx, p.countsKey(), userIDs...)
		names = pipe.HMGet(ctx, p.namesKey(), userIDs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	cs, ns := counts.Val(), names.Val()
	if len(cs) != len(userIDs) || len(ns) != len(userIDs) {
		return nil, fmt.Errorf("redis: presence answered %d counts and %d names for %d users", len(cs), len(ns), len(userIDs))
	}
	for i, id := range userIDs {
		c, _ := cs[i].(string)
		if n, err := strconv.ParseInt(c, 10, 64); err != nil || n <= 0 {
			continue
		}
		name, ok := ns[i].(string)
		if !ok {
			name = id
		}
		out = append(out, rooms.User{ID: id, Name: name})
	}
	return out, nil
}

// Reap implements [rooms.Presence]. It skips this instance's own entry,
// which its heartbeat renews. Each reaped socket is removed in one atomic
// step, so when several instances reap at once each user is reported by
// exactly one of them. It also reports, once, the users that a heartbeat's
// repair of this instance's entry left without a socket (say a Disconnect
// failed while Redis was unreachable, so Disconnect could not report them).
// On an error it returns the users found so far with the error: their
// sockets are gone already, and no other Reap reports them.
func (p *RedisPresence) Reap(ctx context.Context) ([]rooms.User, error) {
	p.mu.Lock()
	out := p.offline
	p.offline = nil
	p.mu.Unlock()
	expired, err := presenceExpiredScript.Run(ctx, p.client, []string{p.instancesKey()}, p.nowArg(), p.instance).StringSlice()
	if err != nil {
		return out, err
	}
	for _, id := range expired {
		out, err = p.reapInstance(ctx, id, out)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// reapInstance removes the sockets of the expired instance id batch by batch
// and appends the users left without a socket to out.
func (p *RedisPresence) reapInstance(ctx context.Context, id string, out []rooms.User) ([]rooms.User, error) {
	keys := p.scriptKeys(id)
	for {
		res, err := presenceReapScript.Run(ctx, p.client, keys, p.nowArg(), id, p.reapBatch).Slice()
		if err != nil {
			return out, err
		}
		if len(res) == 0 || len(res)%2 != 1 {
			return out, fmt.Errorf("redis: presence reap answered %d values", len(res))
		}
		for i := 1; i < len(res); i += 2 {
			uid, _ := res[i].(string)
			name, _ := res[i+1].(string)
			out = append(out, rooms.User{ID: uid, Name: name})
		}
		if more, _ := res[0].(int64); more == 0 {
			return out, nil
		}
	}
}

// Live lists the instances whose presence entry has not expired, this one
// included: the instances that are running. The events queue takes over
// what the others held.
func (p *RedisPresence) Live(ctx context.Context) ([]string, error) {
	return presenceLiveScript.Run(ctx, p.client, []string{p.instancesKey()}, p.nowArg()).StringSlice()
}
