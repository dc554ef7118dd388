package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/config"
	"github.com/chatd/chatd/events"
	chatdredis "github.com/chatd/chatd/redis"
)

// eventsFlushWait bounds how long a single instance, shutting down, keeps
// sending its queued events: they live in memory only.
const eventsFlushWait = 5 * time.Second

// eventsRun is the events machinery of a running chatd (hooks.events.*).
type eventsRun struct {
	sender *events.Sender
	memory *events.MemoryQueue         // single instance
	redis  *chatdredis.RedisEventQueue // cluster mode
	cancel context.CancelFunc
	done   chan struct{}
}

// newEvents wires the events for the backend when hooks.events.url is set:
// a memory queue on a single instance, the Redis stream in cluster mode.
// It returns the sink the server publishes into.
func (m *Main) newEvents(ctx context.Context, cfg config.Config, reg *prometheus.Registry) (events.Sink, error) {
	ec := cfg.Hooks.Events
	if ec.URL == "" {
		return events.Discard, nil
	}
	metrics := events.NewMetrics(reg)
	run := &eventsRun{}
	var q events.Queue
	if m.redisClient != nil {
		rq, err := chatdredis.NewRedisEventQueue(m.redisClient, chatdredis.RedisEventQueueOptions{
			Prefix:     cfg.Redis.Prefix,
			Logger:     m.log,
			InstanceID: cfg.Instance.ID,
			Max:        int64(ec.QueueMax),
			RetryFor:   ec.RetryFor,
			Live:       m.redisPresence.Live,
			Metrics:    metrics,
			Timeout:    cfg.Redis.Timeout,
		})
		if err != nil {
			return nil, fmt.Errorf("hooks.events: %w", err)
		}
		rq.Start(ctx)
		run.redis, q = rq, rq
	} else {
		run.memory = events.NewMemoryQueue(ec.QueueMax, metrics)
		q = run.memory
	}
	sender, err := events.NewSender(events.SenderConfig{
		URL:       ec.URL,
		Secret:    []byte(cfg.Hooks.Secret),
		Timeout:   ec.Timeout,
		RetryFor:  ec.RetryFor,
		BatchMax:  ec.BatchMax,
		BatchWait: ec.BatchWait,
		UserAgent: "chatd/" + version,
		Logger:    m.log,
	}, q, metrics)
	if err != nil {
		if run.redis != nil {
			_ = run.redis.Close(ctx)
		}
		return nil, fmt.Errorf("hooks.events: %w", err)
	}
	run.sender = sender
	m.events = run
	return events.NewPublisher(q, ec.Types, metrics, m.log), nil
}

// start sends events until stop.
func (r *eventsRun) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.sender.Run(ctx)
	}()
}

// stop ends the sending, after the server stopped publishing. A single
// instance first sends what it can within eventsFlushWait; what is left
// is dropped and counted. In cluster mode the queue stays in Redis and the
// instance only writes what it has not written yet.
func (r *eventsRun) stop(ctx context.Context) {
	if r == nil {
		return
	}
	if r.memory != nil && r.cancel != nil {
		fctx, cancel := context.WithTimeout(ctx, eventsFlushWait)
		r.sender.Flush(fctx)
		cancel()
	}
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	if r.memory != nil {
		r.memory.Close()
	}
	if r.redis != nil {
		_ = r.redis.Close(ctx)
	}
}
