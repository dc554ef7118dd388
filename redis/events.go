package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/events"
)

var _ events.Queue = (*RedisEventQueue)(nil)

// Defaults and constants of [RedisEventQueue].
const (
	// eventsGroup is the consumer group every instance reads the stream in;
	// each instance is a consumer named by its instance id.
	eventsGroup = "chatd"
	// eventsField is the stream entry's field that holds the event's JSON.
	eventsField = "e"
	// eventsLocalBuffer bounds the events an instance holds before Redis
	// took them (while a write is under way, or Redis is unreachable).
	eventsLocalBuffer = 10_000
	// eventsWriteBatch is the most events one write hands Redis.
	eventsWriteBatch = 256
	// DefaultEventsBlock is how long one read waits for new events.
	DefaultEventsBlock = 500 * time.Millisecond
	// eventsClaimEvery is how often an instance looks for events that a
	// stopped instance was sending.
	eventsClaimEvery = 2 * time.Second
	// eventsClaimIdle is how long an event must have been left alone
	// before it is taken over, so that two instances taking over from the
	// same stopped one do not both take it.
	eventsClaimIdle = time.Second
	// eventsForgetConsumer is how long a stopped instance's consumer, once
	// it holds no event, stays in the group before it is deleted.
	eventsForgetConsumer = time.Minute
)

// RedisEventQueueOptions configures a [RedisEventQueue].
type RedisEventQueueOptions struct {
	// Prefix starts the stream's key; empty means [DefaultStorePrefix].
	Prefix string
	// Logger receives write failures and take-overs; nil discards them.
	Logger *slog.Logger
	// InstanceID names this instance's consumer in the group; required.
	InstanceID string
	// Max bounds the stream (hooks.events.queue_max), in events: past it
	// the oldest events no sender holds are deleted, and counted.
	Max int64
	// RetryFor is how long an event that Redis did not take yet is tried
	// again before it is dropped (hooks.events.retry_for).
	RetryFor time.Duration
	// Live lists the instances that are alive ([RedisPresence.Live]). The
	// events held by a consumer that is not among them are taken over.
	Live func(ctx context.Context) ([]string, error)
	// Metrics counts what the queue drops; nil counts nowhere.
	Metrics *events.Metrics
	// Timeout bounds each write; 0 means 2 s.
	Timeout time.Duration
	// Block is how long one read waits for new events; 0 means
	// [DefaultEventsBlock].
	Block time.Duration
}

// RedisEventQueue is the [events.Queue] of a cluster: one Redis stream
// shared by every instance, read in one consumer group, so that each event
// is handed to one instance. An instance acknowledges and deletes an event
// once the backend took it (Done); an event it held when it crashed stays
// pending under its consumer, and another instance claims it once presence
// no longer lists the crashed instance as alive. On start an instance
// first sends what its own consumer still holds (after a restart under
// the same instance id).
//
// Key: "<prefix>:events", a stream whose entries carry the event's JSON in
// field "e". Its length is the queue's depth, and is bounded by Max.
//
// Add does not wait for Redis: events go to a local buffer of
// eventsLocalBuffer events that a writer hands to Redis in batches; an
// event published while Redis is unreachable waits there, up to RetryFor,
// and is lost if the process dies first.
type RedisEventQueue struct {
	client   goredis.UniversalClient
	key      string
	consumer string
	max      int64
	retryFor time.Duration
	live     func(ctx context.Context) ([]string, error)
	metrics  *events.Metrics
	log      *slog.Logger
	timeout  time.Duration
	block    time.Duration

	in       chan events.Event
	closed   atomic.Bool
	stop     chan struct{} // closed by Close
	written  chan struct{} // closed when the writer ended
	stopOnce sync.Once
	flushCtx atomic.Pointer[context.Context] // Close's context, for the last writes

	// Read by Next only, which one sender calls at a time.
	ownFirst  bool      // this consumer's pending events are still to be sent
	ownFrom   string    // the entry id after which they are read
	lastClaim time.Time // when Next last looked for a stopped instance's events
}

// NewRedisEventQueue returns a [RedisEventQueue] on client. Call Start
// before Add.
func NewRedisEventQueue(client goredis.UniversalClient, opts RedisEventQueueOptions) (*RedisEventQueue, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	if opts.InstanceID == "" {
		return nil, errors.New("redis: events: InstanceID is required")
	}
	if opts.Max < 1 {
		return nil, fmt.Errorf("redis: events: Max %d must be at least 1", opts.Max)
	}
	if opts.Live == nil {
		return nil, errors.New("redis: events: Live is required, to take over the events of stopped instances")
	}
	q := &RedisEventQueue{
		client:   client,
		key:      prefix + ":events",
		consumer: opts.InstanceID,
		max:      opts.Max,
		retryFor: opts.RetryFor,
		live:     opts.Live,
		metrics:  opts.Metrics,
		log:      logger.With("instance", opts.InstanceID),
		timeout:  opts.Timeout,
		block:    opts.Block,
		in:       make(chan events.Event, eventsLocalBuffer),
		stop:     make(chan struct{}),
		written:  make(chan struct{}),
		ownFirst: true,
		ownFrom:  "0",
	}
	if q.retryFor <= 0 {
		q.retryFor = events.DefaultRetryFor
	}
	if q.timeout <= 0 {
		q.timeout = 2 * time.Second
	}
	if q.block <= 0 {
		q.block = DefaultEventsBlock
	}
	return q, nil
}

// Key returns the stream's key.
func (q *RedisEventQueue) Key() string { return q.key }

// Start creates the consumer group (a Redis failure here is logged: reads
// create it later) and starts the writer.
func (q *RedisEventQueue) Start(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	if err := q.createGroup(ctx); err != nil {
		q.log.Warn("events: creating the Redis consumer group failed; retrying on read", "err", err)
	}
	go q.write()
}

// createGroup creates the group at the stream's start, so that events
// added before it are read too; an existing group is fine.
func (q *RedisEventQueue) createGroup(ctx context.Context) error {
	err := q.client.XGroupCreateMkStream(ctx, q.key, eventsGroup, "0").Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil
	}
	return err
}

// Add implements [events.Queue]. An event that finds the local buffer full
// (Redis has been unreachable for a while) is dropped and counted.
func (q *RedisEventQueue) Add(evs []events.Event) {
	if q.closed.Load() {
		q.metrics.Dropped(events.DropShutdown, len(evs))
		return
	}
	for _, e := range evs {
		select {
		case q.in <- e:
		default:
			q.metrics.Dropped(events.DropRedis, 1)
		}
	}
}

// write hands the buffered events to Redis until Close, then what is left
// within Close's context.
func (q *RedisEventQueue) write() {
	defer close(q.written)
	batch := make([]events.Event, 0, eventsWriteBatch)
	for {
		batch = batch[:0]
		select {
		case e := <-q.in:
			batch = append(batch, e)
		case <-q.stop:
			q.flush(batch)
			return
		}
	more:
		for len(batch) < eventsWriteBatch {
			select {
			case e := <-q.in:
				batch = append(batch, e)
			default:
				break more
			}
		}
		if !q.writeBatch(batch) {
			q.flush(nil)
			return
		}
	}
}

// flush writes batch and everything still buffered, within Close's context.
func (q *RedisEventQueue) flush(batch []events.Event) {
	for {
	more:
		for len(batch) < eventsWriteBatch {
			select {
			case e := <-q.in:
				batch = append(batch, e)
			default:
				break more
			}
		}
		if len(batch) == 0 {
			return
		}
		if !q.writeBatch(batch) {
			q.metrics.Dropped(events.DropShutdown, len(q.in))
			return
		}
		batch = batch[:0]
	}
}

// writeBatch adds batch to the stream, trying again while Redis fails,
// dropping the events older than the retry window. It returns false when
// Close's context ended first (the batch is then counted dropped).
func (q *RedisEventQueue) writeBatch(batch []events.Event) bool {
	args := make([]any, 0, 2+len(batch))
	wait := 100 * time.Millisecond
	for failures := 0; ; failures++ {
		oldest := time.Now().Add(-q.retryFor).UnixMilli()
		live := batch[:0]
		for _, e := range batch {
			if e.Time >= oldest {
				live = append(live, e)
			}
		}
		q.metrics.Dropped(events.DropRedis, len(batch)-len(live))
		batch = live
		if len(batch) == 0 {
			return true
		}
		args = append(args[:0], q.max, eventsGroup)
		for _, e := range batch {
			b, err := json.Marshal(e)
			if err != nil {
				continue // an Event always encodes
			}
			args = append(args, string(b))
		}
		ctx, cancel := q.writeContext()
		dropped, err := eventsAddScript.Run(ctx, q.client, []string{q.key}, args...).Int()
		cancel()
		if err == nil {
			q.metrics.Dropped(events.DropQueueFull, dropped)
			if dropped > 0 {
				q.log.Warn("events: the Redis queue is full; dropped its oldest unsent events", "dropped", dropped, "max", q.max)
			}
			return true
		}
		if failures == 0 || failures%50 == 0 {
			q.log.Warn("events: writing to Redis failed; retrying", "events", len(batch), "err", err)
		}
		if fc := q.flushCtx.Load(); fc != nil && (*fc).Err() != nil {
			q.metrics.Dropped(events.DropShutdown, len(batch))
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stopped():
			t.Stop()
			if fc := q.flushCtx.Load(); fc != nil {
				select {
				case <-(*fc).Done():
				case <-time.After(wait):
				}
			}
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// stopped is closed by Close.
func (q *RedisEventQueue) stopped() <-chan struct{} { return q.stop }

// writeContext bounds one write: the timeout, and Close's context once set.
func (q *RedisEventQueue) writeContext() (context.Context, context.CancelFunc) {
	parent := context.Background()
	if fc := q.flushCtx.Load(); fc != nil {
		parent = *fc
	}
	return context.WithTimeout(parent, q.timeout)
}

// Close stops taking events and writes those still buffered to Redis,
// within ctx. Events held by this instance's sender stay in the stream,
// pending under its consumer: another instance takes them over, or this one
// after a restart under the same id. It is idempotent.
func (q *RedisEventQueue) Close(ctx context.Context) error {
	q.stopOnce.Do(func() {
		q.closed.Store(true)
		q.flushCtx.Store(&ctx)
		close(q.stop)
	})
	select {
	case <-q.written:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redis: events: %d events not written before shutdown: %w", len(q.in), ctx.Err())
	}
}

// Next implements [events.Queue]: first the events this consumer held
// before a restart, then every few seconds those of stopped instances, and
// otherwise new events.
func (q *RedisEventQueue) Next(ctx context.Context, max int, wait time.Duration) ([]events.Event, error) {
	if q.ownFirst {
		evs, last, err := q.readFrom(ctx, q.ownFrom, max, -1)
		if err != nil {
			return nil, err
		}
		if last != "" {
			q.ownFrom = last
			if len(evs) > 0 {
				return evs, nil
			}
		} else {
			q.ownFirst = false
		}
	}
	if time.Since(q.lastClaim) >= eventsClaimEvery {
		q.lastClaim = time.Now()
		evs, err := q.claim(ctx, max)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			return evs, nil
		}
	}
	evs, err := q.read(ctx, ">", max, q.block)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for len(evs) < max {
		left := time.Until(deadline)
		if left < time.Millisecond || ctx.Err() != nil {
			break
		}
		more, err := q.read(ctx, ">", max-len(evs), left)
		if err != nil {
			break // send what we have; the next read reports the error
		}
		evs = append(evs, more...)
	}
	return evs, nil
}

// read reads up to count entries of the group from id (">" new ones, "0"
// this consumer's pending ones), waiting up to block for new ones (-1: not
// at all).
func (q *RedisEventQueue) read(ctx context.Context, id string, count int, block time.Duration) ([]events.Event, error) {
	evs, _, err := q.readFrom(ctx, id, count, block)
	return evs, err
}

// readFrom is read, also returning the id of the last entry read ("" when
// none was).
func (q *RedisEventQueue) readFrom(ctx context.Context, id string, count int, block time.Duration) ([]events.Event, string, error) {
	res, err := q.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: eventsGroup, Consumer: q.consumer, Streams: []string{q.key, id},
		Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, "", nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			// The stream or the group is gone (Redis lost its data, or
			// someone deleted the key): start again.
			gctx, cancel := context.WithTimeout(ctx, q.timeout)
			defer cancel()
			return nil, "", q.createGroup(gctx)
		}
		return nil, "", err
	}
	var msgs []goredis.XMessage
	for _, s := range res {
		msgs = append(msgs, s.Messages...)
	}
	last := ""
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].ID
	}
	return q.decode(ctx, msgs), last, nil
}

// decode turns stream entries into events. Entries that hold no event (an
// entry deleted while pending, or one that does not decode) are removed.
func (q *RedisEventQueue) decode(ctx context.Context, msgs []goredis.XMessage) []events.Event {
	out := make([]events.Event, 0, len(msgs))
	var bad []events.Event
	for _, m := range msgs {
		s, _ := m.Values[eventsField].(string)
		var e events.Event
		if s == "" || json.Unmarshal([]byte(s), &e) != nil {
			bad = append(bad, events.Event{}.WithRef(m.ID))
			continue
		}
		out = append(out, e.WithRef(m.ID))
	}
	if len(bad) > 0 {
		if err := q.Done(ctx, bad); err != nil {
			q.log.Warn("events: removing stream entries that hold no event failed", "entries", len(bad), "err", err)
		}
	}
	return out
}

// claim takes over up to max events held by consumers whose instance is no
// longer alive, and deletes such consumers once they hold nothing.
func (q *RedisEventQueue) claim(ctx context.Context, max int) ([]events.Event, error) {
	ids, err := q.live(ctx)
	if err != nil {
		return nil, err
	}
	alive := make(map[string]bool, len(ids)+1)
	for _, id := range ids {
		alive[id] = true
	}
	alive[q.consumer] = true
	consumers, err := q.client.XInfoConsumers(ctx, q.key, eventsGroup).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key") {
			return nil, nil
		}
		return nil, err
	}
	for _, c := range consumers {
		if alive[c.Name] {
			continue
		}
		if c.Pending == 0 {
			if c.Idle >= eventsForgetConsumer {
				_ = q.client.XGroupDelConsumer(ctx, q.key, eventsGroup, c.Name).Err()
			}
			continue
		}
		pending, err := q.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
			Stream: q.key, Group: eventsGroup, Idle: eventsClaimIdle, Start: "-", End: "+",
			Count: int64(max), Consumer: c.Name,
		}).Result()
		if err != nil {
			return nil, err
		}
		if len(pending) == 0 {
			continue
		}
		refs := make([]string, len(pending))
		for i, p := range pending {
			refs[i] = p.ID
		}
		msgs, err := q.client.XClaim(ctx, &goredis.XClaimArgs{
			Stream: q.key, Group: eventsGroup, Consumer: q.consumer, MinIdle: eventsClaimIdle, Messages: refs,
		}).Result()
		if err != nil {
			return nil, err
		}
		q.log.Info("events: took over the events of a stopped instance", "from", c.Name, "events", len(msgs))
		if evs := q.decode(ctx, msgs); len(evs) > 0 {
			return evs, nil
		}
	}
	return nil, nil
}

// Done implements [events.Queue]: it acknowledges and deletes the entries.
func (q *RedisEventQueue) Done(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	refs := make([]string, 0, len(evs))
	for _, e := range evs {
		if r := e.Ref(); r != "" {
			refs = append(refs, r)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	_, err := q.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XAck(ctx, q.key, eventsGroup, refs...)
		p.XDel(ctx, q.key, refs...)
		return nil
	})
	return err
}

// Depth implements [events.Queue]: the stream's length, for the cluster.
func (q *RedisEventQueue) Depth(ctx context.Context) (int64, error) {
	return q.client.XLen(ctx, q.key).Result()
}

// eventsAddScript adds events to the stream within its bound. KEYS[1] the
// stream. ARGV: the bound, the group, then each event's JSON. When the
// events do not fit, it deletes the oldest entries that no consumer was
// handed yet (those after the group's last-delivered id); when still more
// would not fit (everything queued is being sent), the oldest of the new
// events are not added. It returns how many events it dropped.
var eventsAddScript = goredis.NewScript(`
local max = tonumber(ARGV[1])
local n = #ARGV - 2
local over = redis.call('XLEN', KEYS[1]) + n - max
local dropped = 0
if over > 0 then
  local last = '0-0'
  local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
  if type(groups) == 'table' and not groups.err then
    for _, g in ipairs(groups) do
      local name, ld
      for i = 1, #g, 2 do
        if g[i] == 'name' then name = g[i + 1] end
        if g[i] == 'last-delivered-id' then ld = g[i + 1] end
      end
      if name == ARGV[2] and ld then last = ld end
    end
  end
  local old = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', over)
  for _, e in ipairs(old) do redis.call('XDEL', KEYS[1], e[1]) end
  dropped = #old
  over = over - #old
end
local first = 3
if over > 0 then
  first = 3 + over
  dropped = dropped + over
end
for i = first, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
end
return dropped
`)
