package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// aliveNodes lists the other instances heard from within HeartbeatTimeout.
func (b *AdapterBuilder) aliveNodes() []string {
	cutoff := time.Now().Add(-b.opts.HeartbeatTimeout)
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	out := make([]string, 0, len(b.nodes))
	for id, seen := range b.nodes {
		if seen.After(cutoff) {
			out = append(out, id)
		}
	}
	return out
}

// touchNode records that id was heard from and reports whether it is new.
func (b *AdapterBuilder) touchNode(id string) bool {
	now := time.Now()
	b.nodesMu.Lock()
	seen, ok := b.nodes[id]
	b.nodes[id] = now
	b.nodesMu.Unlock()
	isNew := !ok || now.Sub(seen) > b.opts.HeartbeatTimeout
	if isNew {
		b.log.Info("adapter: instance joined", "node", id)
	}
	return isNew
}

func (b *AdapterBuilder) dropNode(id, why string) {
	b.nodesMu.Lock()
	_, ok := b.nodes[id]
	delete(b.nodes, id)
	b.nodesMu.Unlock()
	if ok {
		b.log.Info("adapter: instance left", "node", id, "why", why)
	}
	b.reqMu.Lock()
	for _, p := range b.requests {
		p.forget(id)
	}
	b.reqMu.Unlock()
}

func (b *AdapterBuilder) pruneNodes() {
	cutoff := time.Now().Add(-b.opts.HeartbeatTimeout)
	var dead []string
	b.nodesMu.Lock()
	for id, seen := range b.nodes {
		if !seen.After(cutoff) {
			dead = append(dead, id)
		}
	}
	b.nodesMu.Unlock()
	for _, id := range dead {
		b.dropNode(id, "heartbeat timeout")
	}
}

func (b *AdapterBuilder) heartbeatLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.HeartbeatInterval)
	defer t.Stop()
	b.heartbeat()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		case <-b.hbWake:
		}
		b.heartbeat()
		b.pruneNodes()
	}
}

func (b *AdapterBuilder) wakeHeartbeat() {
	select {
	case b.hbWake <- struct{}{}:
	default:
	}
}

func (b *AdapterBuilder) heartbeat() {
	payload, err := encodeWire(&wireMessage{Kind: kindHeartbeat, From: b.id, Nonce: b.nonce})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
	defer cancel()
	err = b.client.Publish(ctx, b.busChannel, payload).Err()
	b.noteRedis(err)
	if err != nil {
		b.publishFailed(kindHeartbeat, "redis", err)
		return
	}
	b.published(kindHeartbeat)
}

// noteRedis records the outcome of a Redis command for Ready.
func (b *AdapterBuilder) noteRedis(err error) {
	if err == nil {
		b.redisOK.Store(true)
		return
	}
	if b.ctx.Err() == nil && !errors.Is(err, redis.Nil) {
		b.redisOK.Store(false)
	}
}
