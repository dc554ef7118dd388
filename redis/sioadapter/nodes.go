package sioadapter

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// nodes is this instance's view of the others (when each was last heard
// from, what its heartbeats say it understands) and the state of its own
// heartbeats.
type nodes struct {
	timeout time.Duration // HeartbeatTimeout: how long an instance not heard from still counts as alive

	mu       sync.Mutex // guards the following fields
	seen     map[string]time.Time
	features map[string]uint8 // what each instance's heartbeats say it understands

	// offsetOK is set while every other live instance understands
	// wireMessage.Offset (featureOffset), so recordAndPublish may be used.
	offsetOK atomic.Bool
	// storedOK is set while every other live instance understands
	// wireMessage.ID (featureStoredID), so StoredBroadcast may be used.
	storedOK atomic.Bool
	// unechoed is when the oldest heartbeat of this instance that has not
	// come back on its subscription was published (Unix nanoseconds), 0
	// when every one has.
	unechoed atomic.Int64
	wake     chan struct{} // asks heartbeatLoop for a heartbeat now
}

func newNodes(timeout time.Duration) *nodes {
	n := &nodes{
		timeout:  timeout,
		seen:     make(map[string]time.Time),
		features: make(map[string]uint8),
		wake:     make(chan struct{}, 1),
	}
	n.offsetOK.Store(true) // no other instance yet
	n.storedOK.Store(true)
	return n
}

// alive lists the other instances heard from within the timeout.
func (n *nodes) alive() []string {
	cutoff := time.Now().Add(-n.timeout)
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.seen))
	for id, seen := range n.seen {
		if seen.After(cutoff) {
			out = append(out, id)
		}
	}
	return out
}

// touch records that id was heard from and reports whether it is new: not
// known, or not heard from within the timeout.
func (n *nodes) touch(id string) bool {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	seen, ok := n.seen[id]
	n.seen[id] = now
	if !ok {
		n.checkFeaturesLocked() // what it understands is not known yet
	}
	return !ok || now.Sub(seen) > n.timeout
}

// drop forgets id and reports whether it was known.
func (n *nodes) drop(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.seen[id]
	delete(n.seen, id)
	delete(n.features, id)
	n.checkFeaturesLocked()
	return ok
}

// noteFeatures records what a heartbeat says its sender understands.
func (n *nodes) noteFeatures(id string, features uint8) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.seen[id]; !ok || n.features[id] == features {
		return
	}
	n.features[id] = features
	n.checkFeaturesLocked()
}

// checkFeaturesLocked sets offsetOK and storedOK from the instances known
// now. An instance heard from before its first heartbeat counts as one that
// understands neither: during a rolling upgrade an older instance must get
// each broadcast with its offset and id in Data. The caller holds n.mu.
func (n *nodes) checkFeaturesLocked() {
	all := featureOffset | featureStoredID
	for id := range n.seen {
		all &= n.features[id]
	}
	n.offsetOK.Store(all&featureOffset != 0)
	n.storedOK.Store(all&featureStoredID != 0)
}

// expired lists the instances not heard from within the timeout.
func (n *nodes) expired() []string {
	cutoff := time.Now().Add(-n.timeout)
	var dead []string
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, seen := range n.seen {
		if !seen.After(cutoff) {
			dead = append(dead, id)
		}
	}
	return dead
}

// wakeHeartbeat asks for a heartbeat now.
func (n *nodes) wakeHeartbeat() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// touchNode records that id was heard from and reports whether it is new.
func (b *AdapterBuilder) touchNode(id string) bool {
	isNew := b.nodes.touch(id)
	if isNew {
		b.log.Info("adapter: instance joined", "node", id)
	}
	return isNew
}

// dropNode forgets an instance that left or went silent, and stops waiting
// for its answers.
func (b *AdapterBuilder) dropNode(id, why string) {
	if b.nodes.drop(id) {
		b.log.Info("adapter: instance left", "node", id, "why", why)
	}
	if b.shard != nil {
		b.shard.seqs.forget(id)
	}
	b.reqs.forget(id)
}

func (b *AdapterBuilder) pruneNodes() {
	for _, id := range b.nodes.expired() {
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
		case <-b.nodes.wake:
		}
		b.heartbeat()
		b.pruneNodes()
	}
}

func (b *AdapterBuilder) heartbeat() {
	features := featureOffset | featureStoredID
	if b.opts.legacyWire {
		features = 0
	}
	if b.shard != nil {
		features |= featureSharded
	}
	payload, err := encodeWire(&wireMessage{Kind: kindHeartbeat, From: b.id, Nonce: b.nonce, Features: features})
	if err != nil {
		return
	}
	b.nodes.unechoed.CompareAndSwap(0, time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
	defer cancel()
	receivers, err := b.publishCmd(ctx, b.client, b.busChannel, payload).Result()
	b.notePublish(err)
	if err != nil {
		b.publishFailed(kindHeartbeat, "redis", err)
		return
	}
	b.published(kindHeartbeat)
	if b.shard != nil && receivers == 0 && b.shard.ready() {
		// This instance listens to its own bus partition, so the SPUBLISH
		// reached a node that no longer serves the slot (a replica since a
		// failover answers 0 rather than MOVED): reload the slot map now.
		b.shard.kickCheck()
	}
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
	u := b.nodes.unechoed.Load()
	return u != 0 && b.subscribed() && b.redisOK.Load() &&
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
