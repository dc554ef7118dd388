package sioadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Room changes that the caller waits for.
//
// AddSockets and DelSockets publish the change and return: the other
// instances apply it when the message reaches them, and a broadcast sent
// right after can travel faster on another channel, so it may still reach a
// socket that just left a room, or miss one that just joined (the instance
// holding it may not even be subscribed to the room's channel yet). The Wait
// variants below close that gap: they ask every live instance on the bus,
// each one applies the change to its sockets and answers (after a join, once
// Redis has confirmed its subscription to the rooms' channels), and this
// instance waits for the answers and for its own subscriptions.
//
// Redis confirms subscriptions with a barrier: SUBSCRIBE only writes the
// command, so after it this instance sends a PING with a payload of its own
// on the same connection. Redis answers commands of one connection in order,
// so the PONG proves the SUBSCRIBE written before it is in effect; and when
// go-redis reconnects, it subscribes again to every channel before it writes
// anything else, so a PONG received on a new connection proves the same.

// AddSocketsWait makes the matching sockets of every instance join rooms,
// like AddSockets, and returns once every live instance has put its
// matching sockets in the rooms and Redis has confirmed its subscription to
// the rooms' channels, and this instance's own subscriptions are confirmed
// too: a broadcast to the rooms sent after it returns, from any instance,
// reaches every matching socket. When an instance does not answer within
// RequestTimeout (or before ctx ends), it returns an error wrapping
// ErrRequestTimeout that names the instances; the change is still applied
// wherever the message arrives.
func (a *RedisAdapter) AddSocketsWait(ctx context.Context, opts *socket.BroadcastOptions, rooms []socket.Room) error {
	opts = adapterNormalizeOpts(opts)
	a.Adapter.AddSockets(opts, rooms)
	return a.applyEverywhere(ctx, kindSocketsJoin, opts, rooms)
}

// DelSocketsWait makes the matching sockets of every instance leave rooms,
// like DelSockets, and returns once every live instance has taken its
// matching sockets out of the rooms: a broadcast to the rooms sent after it
// returns, from any instance, no longer reaches them. Errors are those of
// AddSocketsWait.
func (a *RedisAdapter) DelSocketsWait(ctx context.Context, opts *socket.BroadcastOptions, rooms []socket.Room) error {
	opts = adapterNormalizeOpts(opts)
	a.Adapter.DelSockets(opts, rooms)
	return a.applyEverywhere(ctx, kindSocketsLeave, opts, rooms)
}

// WaitSubscribed returns once Redis has confirmed this instance's
// subscription to the channel of each of rooms that has a socket of this
// instance (the others need none), so that a broadcast to them sent
// afterwards by another instance reaches this one. It fails when ctx ends
// first or the adapter is closed.
func (a *RedisAdapter) WaitSubscribed(ctx context.Context, rooms []socket.Room) error {
	return a.b.waitSubscribed(ctx, a, rooms)
}

// applyEverywhere asks the other instances to apply a socketsJoin or
// socketsLeave (already applied here) and waits for their answers and, for
// a join, for this instance's subscriptions.
func (a *RedisAdapter) applyEverywhere(ctx context.Context, kind wireKind, opts *socket.BroadcastOptions, rooms []socket.Room) error {
	remote := make(chan error, 1)
	if a.localOnly(opts) {
		remote <- nil
	} else {
		m := &wireMessage{Kind: kind, Nsp: a.name, Opts: optsToWire(opts)}
		for _, r := range rooms {
			m.Rooms = append(m.Rooms, string(r))
		}
		go func() {
			_, err := a.b.request(ctx, m)
			remote <- err
		}()
	}
	var local error
	if kind == kindSocketsJoin {
		local = a.WaitSubscribed(ctx, rooms)
	}
	return errors.Join(local, <-remote)
}

// answerMembership answers a socketsJoin or socketsLeave request of another
// instance, once applied to the local sockets: at once for a leave (an
// instance that still listens to a room's channel delivers only to the
// sockets in the room), after the subscriptions are confirmed for a join.
// An instance whose subscriptions cannot be confirmed within RequestTimeout
// does not answer, and the requester names it.
func (a *RedisAdapter) answerMembership(m *wireMessage, rooms []socket.Room) {
	from, req := m.From, m.Req
	answer := func() { a.b.reply(from, &wireMessage{Kind: kindSocketsReply, Req: req}) }
	wanted := false
	for _, r := range rooms {
		wanted = wanted || a.wantsRoom(r)
	}
	if m.Kind == kindSocketsLeave || !wanted {
		answer()
		return
	}
	// The wait needs the receiving goroutine (the PONG arrives there): it
	// runs on a goroutine of its own.
	b := a.b
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, b.opts.RequestTimeout)
		defer cancel()
		if err := b.waitSubscribed(ctx, a, rooms); err != nil {
			if b.ctx.Err() == nil {
				b.logLimited("membership-wait", slog.LevelWarn, "adapter: room subscription not confirmed by Redis; not answering the join", "from", from, "err", err)
			}
			return
		}
		answer()
	}()
}

// waitSubscribed returns once Redis has confirmed the subscription to the
// channel of every room of rooms that has a local socket of a's namespace.
func (b *AdapterBuilder) waitSubscribed(ctx context.Context, a *RedisAdapter, rooms []socket.Room) error {
	if b.shard != nil {
		return b.waitShardSubscribed(ctx, a, rooms)
	}
	var tokens []string
	defer func() { b.subs.barriers.drop(tokens) }()
	passed := make(chan struct{})
	backoff := 20 * time.Millisecond
	for {
		select {
		case <-passed:
			return nil
		default:
		}
		if b.closed.Load() {
			return ErrAdapterClosed
		}
		wanted := 0
		for _, r := range rooms {
			if a.wantsRoom(r) {
				b.markRoom(a, r)
				wanted++
			}
		}
		if wanted == 0 {
			return nil
		}
		reset := b.subs.barriers.resetChan()
		// Every room marked above now has its SUBSCRIBE written, by this
		// call or by the one that held the subscription lock before it.
		b.syncSubscriptions()
		token := b.subs.barriers.add(b.nonce, passed)
		tokens = append(tokens, token)
		retry := b.opts.PublishTimeout
		if err := b.subs.writeBarrier(ctx, token, b.opts.PublishTimeout); err != nil {
			retry = backoff
			backoff = min(2*backoff, time.Second)
		}
		t := time.NewTimer(retry)
		select {
		case <-passed:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redis: Redis has not confirmed the subscription to %d room(s) of namespace %q: %w", wanted, a.name, context.Cause(ctx))
		case <-b.ctx.Done():
			t.Stop()
			return ErrAdapterClosed
		case <-reset:
			// The PING may be lost with the connection: send another (an
			// earlier PONG still counts if it comes).
			t.Stop()
		case <-t.C:
		}
	}
}
