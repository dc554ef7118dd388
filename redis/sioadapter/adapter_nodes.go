package sioadapter

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
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
	if !ok {
		b.nodesMu.Lock()
		b.checkFeaturesLocked() // what it understands is not known yet
		b.nodesMu.Unlock()
	}
	if isNew {
		b.log.Info("adapter: instance joined", "node", id)
	}
	return isNew
}

func (b *AdapterBuilder) dropNode(id, why string) {
	b.nodesMu.Lock()
	_, ok := b.nodes[id]
	delete(b.nodes, id)
	delete(b.features, id)
	b.checkFeaturesLocked()
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

// noteFeatures records what a heartbeat says its sender understands.
func (b *AdapterBuilder) noteFeatures(id string, features uint8) {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	if _, ok := b.nodes[id]; !ok || b.features[id] == features {
		return
	}
	b.features[id] = features
	b.checkFeaturesLocked()
}

// checkFeaturesLocked sets offsetOK from the instances known now. An
// instance heard from before its first heartbeat counts as one that does
// not understand Offset: during a rolling upgrade an older instance must
// get each broadcast with its offset in Data. The caller holds nodesMu.
func (b *AdapterBuilder) checkFeaturesLocked() {
	ok := true
	for id := range b.nodes {
		if b.features[id]&featureOffset == 0 {
			ok = false
			break
		}
	}
	b.offsetOK.Store(ok)
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
	features := featureOffset
	if b.opts.legacyWire {
		features = 0
	}
	payload, err := encodeWire(&wireMessage{Kind: kindHeartbeat, From: b.id, Nonce: b.nonce, Features: features})
	if err != nil {
		return
	}
	b.unechoed.CompareAndSwap(0, time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
	defer cancel()
	pub, err := b.publisher(ctx)
	if err == nil {
		err = pub.Publish(ctx, b.busChannel, payload).Err()
	}
	b.notePublish(err)
	if err != nil {
		b.publishFailed(kindHeartbeat, "redis", err)
		return
	}
	b.published(kindHeartbeat)
}

// echoGrace is how long this instance's heartbeat may take to come back on
// its own subscription: two heartbeat intervals and a publish timeout.
func (b *AdapterBuilder) echoGrace() time.Duration {
	return 2*b.opts.HeartbeatInterval + b.opts.PublishTimeout
}

// echoLost reports whether the subscription no longer receives what this
// instance publishes although publishing succeeds: a heartbeat has not come
// back within echoGrace. It happens when the subscription stays on a Redis
// that is no longer the one published to: after a Sentinel failover
// go-redis moves its command connections to the new master but leaves the
// subscription connection on the old one, which, until Sentinel turns it
// into a replica, gets nothing of what is published on the new master.
func (b *AdapterBuilder) echoLost() bool {
	u := b.unechoed.Load()
	return u != 0 && b.subscribed.Load() && b.redisOK.Load() &&
		time.Since(time.Unix(0, u)) > b.echoGrace()
}

// noteRedis records the outcome of a Redis command for Ready.
func (b *AdapterBuilder) noteRedis(err error) {
	if err == nil {
		b.redisOK.Store(true)
		return
	}
	if b.ctx.Err() == nil && !errors.Is(err, goredis.Nil) {
		b.redisOK.Store(false)
	}
}
