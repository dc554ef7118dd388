package sioadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// publish queues a message for PUBLISH. It never blocks: when the queue is
// full the message is dropped and counted.
func (b *AdapterBuilder) publish(channel string, m *wireMessage) error {
	m.From = b.id
	if b.closed.Load() {
		b.dropped(m.Kind, "closed", ErrAdapterClosed)
		return ErrAdapterClosed
	}
	payload, err := encodeWire(m)
	if err != nil {
		err = fmt.Errorf("%w: %w", errUnsupportedData, err)
		b.dropped(m.Kind, "encode", err)
		return err
	}
	if !b.pub.enqueue(adapterOutgoing{channel: channel, kind: m.Kind, payload: payload}) {
		err := errors.New("redis: adapter publish queue is full")
		b.dropped(m.Kind, "queue_full", err)
		return err
	}
	return nil
}

// publishLoop sends the queued messages in order, in pipelined batches of
// at most maxBatch, each bounded by PublishTimeout.
func (b *AdapterBuilder) publishLoop() {
	defer b.wg.Done()
	defer b.answerQueued()
	const maxBatch = 128
	batch := make([]adapterOutgoing, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-b.ctx.Done():
			return
		case m := <-b.pub.queue:
			batch = append(batch, m)
		}
		yielded := false
	fill:
		for len(batch) < maxBatch {
			select {
			case m := <-b.pub.queue:
				batch = append(batch, m)
			default:
				if yielded {
					break fill
				}
				// Let the goroutines that are ready to run (message
				// handlers, say) queue what they are about to publish, so
				// that it shares this batch's write(2) and round trip.
				yielded = true
				runtime.Gosched()
			}
		}
		b.sendBatch(batch)
	}
}

func (b *AdapterBuilder) sendBatch(batch []adapterOutgoing) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
	defer cancel()
	pub, err := b.pub.conn(ctx)
	if err != nil {
		b.noteRedis(err)
		for _, m := range batch {
			if m.record != nil {
				m.record.done <- recordResult{err: err}
			}
			b.publishFailed(m.kind, "redis", err)
		}
		return
	}
	pipe := pub.Pipeline()
	cmds := make([]goredis.Cmder, len(batch))
	for i, m := range batch {
		if m.record != nil && !m.record.take() {
			continue // its waiter gave up: it must not happen now
		}
		if m.record != nil && m.record.script != nil {
			// A store's script: by its hash, since its text is a few kB
			// that Redis would read and hash for every message. When Redis
			// lacks it, nothing ran, and StoredBroadcast.Run sends it again
			// with its text.
			if m.record.eval {
				cmds[i] = m.record.script.Eval(ctx, pipe, m.record.keys, m.record.args...)
			} else {
				cmds[i] = m.record.script.EvalSha(ctx, pipe, m.record.keys, m.record.args...)
			}
			continue
		}
		if m.record != nil {
			// EVAL, not EVALSHA: a script missing after a Redis restart
			// would fail here while later messages of the batch go out,
			// out of order. Redis caches the compiled script by its hash.
			cmds[i] = recordPublishScript.Eval(ctx, pipe, []string{b.rec.streamKey}, m.record.args...)
			continue
		}
		payload := m.payload
		if b.shard != nil {
			// Numbered here, in the order of sending (see seqs).
			if p, err := withSeq(payload, b.seq.Add(1)); err == nil {
				payload = p
			}
		}
		cmds[i] = b.publishCmd(ctx, pipe, m.channel, payload)
	}
	_, err = pipe.Exec(ctx)
	if goredis.HasErrorPrefix(err, "NOSCRIPT") {
		err = nil // a store's script to send again with its text: Redis answered
	}
	b.notePublish(err)
	for i, m := range batch {
		if cmds[i] == nil {
			continue // abandoned: its caller has told the sender
		}
		cerr := cmds[i].Err()
		if m.record != nil && m.record.script != nil {
			// StoredBroadcast.Run counts it once it has the answer.
			res := recordResult{err: cerr}
			if cerr == nil {
				res.vals, res.err = cmds[i].(*goredis.Cmd).Slice()
			}
			m.record.done <- res
			if cerr != nil && !goredis.HasErrorPrefix(cerr, "NOSCRIPT") {
				b.publishFailed(m.kind, "redis", cerr)
			}
			continue
		}
		if m.record != nil {
			res := recordResult{err: cerr}
			if cerr == nil {
				vals, _ := cmds[i].(*goredis.Cmd).Slice()
				if len(vals) > 0 {
					res.id, _ = vals[0].(string)
				}
				if len(vals) > 1 {
					res.recordErr, _ = vals[1].(string)
				}
			}
			m.record.done <- res
		}
		if cerr != nil {
			b.publishFailed(m.kind, "redis", cerr)
			continue
		}
		b.published(m.kind)
	}
}

// answerQueued fails the record jobs still queued when the publish loop
// stops, so that no broadcast waits for them.
func (b *AdapterBuilder) answerQueued() {
	for {
		select {
		case m := <-b.pub.queue:
			if m.record != nil {
				m.record.done <- recordResult{err: ErrAdapterClosed}
			}
			b.dropped(m.kind, "closed", ErrAdapterClosed)
		default:
			return
		}
	}
}

// publisher is the queue of messages for Redis, which publishLoop sends in
// order, and the connection they go through.
type publisher struct {
	client goredis.UniversalClient
	queue  chan adapterOutgoing
}

func newPublisher(client goredis.UniversalClient, size int) *publisher {
	return &publisher{client: client, queue: make(chan adapterOutgoing, size)}
}

// enqueue adds a message to the queue without blocking; it reports false
// when the queue is full.
func (p *publisher) enqueue(m adapterOutgoing) bool {
	select {
	case p.queue <- m:
		return true
	default:
		return false
	}
}

// conn returns the client that every PUBLISH of the adapter goes through:
// the client itself.
//
// On Redis Cluster the adapter uses sharded Pub/Sub (see publishCmd):
// SPUBLISH has its channel for a key, so go-redis sends each one to the
// master serving the channel's slot, which delivers it to the subscribers
// of that channel, on that master only. A pipeline groups its commands by
// master and keeps their order on each, and the publish loop sends one
// batch after the other, so the messages of one instance on one channel
// reach its subscribers in the order they were sent; messages on channels
// of different masters keep no order between them (see the package
// documentation for what relies on what).
//
// (Classic PUBLISH on Redis Cluster, which chatd used before, is relayed by
// every node to every other: every instance then published on one node so
// that its messages kept one order.)
func (p *publisher) conn(context.Context) (goredis.Cmdable, error) {
	return p.client, nil
}

// publishCmd queues or sends, on pub, the command that publishes payload on
// channel: SPUBLISH on Redis Cluster, PUBLISH elsewhere.
func (b *AdapterBuilder) publishCmd(ctx context.Context, pub goredis.Cmdable, channel string, payload []byte) *goredis.IntCmd {
	if b.shard != nil {
		return pub.SPublish(ctx, channel, payload)
	}
	return pub.Publish(ctx, channel, payload)
}

// notePublish records the outcome of a PUBLISH for Ready. On Redis Cluster
// a failure also asks go-redis to reload the slot map, so that publishing
// moves to a slot's new master after a failover sooner than the periodic
// check of the subscriptions (shardCheckInterval) would.
func (b *AdapterBuilder) notePublish(err error) {
	b.noteRedis(err)
	if err == nil || errors.Is(err, goredis.Nil) {
		return
	}
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		cc.ReloadState(b.ctx)
	}
}

func (b *AdapterBuilder) published(kind wireKind) {
	b.stats.published.Add(1)
	if h := b.opts.Hooks.Published; h != nil {
		h(kind.String())
	}
}

func (b *AdapterBuilder) publishFailed(kind wireKind, reason string, err error) {
	b.stats.publishErrors.Add(1)
	if h := b.opts.Hooks.PublishFailed; h != nil {
		h(kind.String(), reason)
	}
	if b.ctx.Err() == nil {
		b.logLimited("publish:"+reason, slog.LevelWarn, "adapter: message not published", "kind", kind.String(), "reason", reason, "err", err)
	}
}

func (b *AdapterBuilder) dropped(kind wireKind, reason string, err error) {
	b.stats.dropped.Add(1)
	b.publishFailed(kind, reason, err)
}

// logLimited logs at most once per limiter period per key, with the number
// of messages suppressed since the last one.
func (b *AdapterBuilder) logLimited(key string, level slog.Level, msg string, args ...any) {
	ok, suppressed := b.limiter.allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	b.log.Log(context.Background(), level, msg, args...)
}

type adapterLogLimiter struct {
	every time.Duration
	mu    sync.Mutex // guards the following fields
	last  map[string]time.Time
	count map[string]int
}

func (l *adapterLogLimiter) allow(key string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = make(map[string]time.Time)
		l.count = make(map[string]int)
	}
	now := time.Now()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		l.count[key]++
		return false, 0
	}
	suppressed := l.count[key]
	l.last[key] = now
	l.count[key] = 0
	return true, suppressed
}

// workLoop runs what may call application code (server-side emit listeners,
// acknowledgement callbacks, disconnect listeners) off the receiving
// goroutine, in order.
func (b *AdapterBuilder) workLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case fn := <-b.work:
			fn()
		}
	}
}

func (b *AdapterBuilder) enqueueWork(kind wireKind, fn func()) {
	select {
	case b.work <- fn:
	default:
		b.logLimited("work:"+kind.String(), slog.LevelWarn, "adapter: callback queue full, message dropped", "kind", kind.String())
	}
}
