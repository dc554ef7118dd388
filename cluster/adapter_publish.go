package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	select {
	case b.pubQ <- adapterOutgoing{channel: channel, kind: m.Kind, payload: payload}:
		return nil
	default:
		err := errors.New("cluster: adapter publish queue is full")
		b.dropped(m.Kind, "queue_full", err)
		return err
	}
}

// publishLoop sends the queued messages in order, in pipelined batches of
// at most maxBatch, each bounded by PublishTimeout.
func (b *AdapterBuilder) publishLoop() {
	defer b.wg.Done()
	const maxBatch = 128
	batch := make([]adapterOutgoing, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-b.ctx.Done():
			return
		case m := <-b.pubQ:
			batch = append(batch, m)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case m := <-b.pubQ:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		b.sendBatch(batch)
	}
}

func (b *AdapterBuilder) sendBatch(batch []adapterOutgoing) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
	defer cancel()
	pipe := b.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(batch))
	for i, m := range batch {
		cmds[i] = pipe.Publish(ctx, m.channel, m.payload)
	}
	_, err := pipe.Exec(ctx)
	b.noteRedis(err)
	for i, m := range batch {
		if cerr := cmds[i].Err(); cerr != nil {
			b.publishFailed(m.kind, "redis", cerr)
			continue
		}
		b.published(m.kind)
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
