package sioadapter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// receiveLoop reads the subscription. go-redis reconnects and resubscribes
// every channel by itself after a connection error; a connection that goes
// silent (no message, not even our own heartbeat, nor a PONG) is replaced,
// and so is one that still answers but no longer gets this instance's own
// heartbeats (see echoLost).
func (b *AdapterBuilder) receiveLoop() {
	defer b.wg.Done()
	backoff := 50 * time.Millisecond
	silent := 0
	for b.ctx.Err() == nil {
		ps := b.current.Load()
		msg, err := ps.ReceiveTimeout(b.ctx, b.opts.HeartbeatInterval)
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				silent++
				// Checked only here, with nothing left to read, so that a
				// heartbeat still waiting in the connection's buffer
				// behind a backlog does not count as lost.
				if b.echoLost() {
					b.log.Warn("adapter: this instance's own heartbeats no longer reach its Redis subscription (a failover?), subscribing again")
					b.subscribed.Store(false)
					b.renewPubSub()
					b.resetBarriers()
					b.unechoed.Store(0)
					silent = 0
					continue
				}
				if silent >= 3 {
					b.log.Warn("adapter: Redis subscription silent, reconnecting")
					b.subscribed.Store(false)
					b.renewPubSub()
					b.resetBarriers()
					silent = 0
					continue
				}
				ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
				_ = ps.Ping(ctx)
				cancel()
				continue
			}
			if b.subscribed.Swap(false) {
				b.log.Warn("adapter: Redis subscription lost", "err", err)
			}
			// go-redis reconnects and subscribes again; a PING written on
			// the lost connection gets no PONG.
			b.resetBarriers()
			b.redisOK.Store(false)
			if !b.wait(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		silent = 0
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.busChannel {
				// Heartbeats published before this subscription may never
				// come back.
				b.unechoed.Store(0)
				if !b.subscribed.Swap(true) {
					b.log.Info("adapter: Redis subscription ready")
					// Announce ourselves now and refresh Ready.
					b.wakeHeartbeat()
				}
			}
		case *goredis.Message:
			b.handle(m)
		case *goredis.Pong:
			b.passBarrier(m.Payload)
		}
	}
}

func (b *AdapterBuilder) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// renewPubSub replaces the subscription connection, subscribing again to
// every channel.
func (b *AdapterBuilder) renewPubSub() {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if b.ctx.Err() != nil {
		return
	}
	_ = b.ps.Close()
	channels := []string{b.busChannel, b.nodeChannel}
	for ch := range b.applied {
		channels = append(channels, ch)
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.RequestTimeout)
	defer cancel()
	b.ps = b.client.Subscribe(ctx)
	b.current.Store(b.ps)
	if err := b.ps.Subscribe(ctx, channels...); err != nil {
		b.log.Debug("adapter: resubscribe failed, will retry", "err", err)
	}
}

func (b *AdapterBuilder) roomChannel(nsp string, room socket.Room) string {
	return b.roomPrefix + nsp + ":" + string(room)
}

// markRoom asks the subscription loop to check whether this instance still
// needs the room's channel.
func (b *AdapterBuilder) markRoom(a *RedisAdapter, room socket.Room) {
	b.dirtyMu.Lock()
	b.dirty[b.roomChannel(a.name, room)] = adapterRoomRef{adapter: a, room: room}
	b.dirtyMu.Unlock()
	select {
	case b.subWake <- struct{}{}:
	default:
	}
}

func (b *AdapterBuilder) subscriptionLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.subWake:
		}
		b.syncSubscriptions()
	}
}

// syncSubscriptions subscribes to the channels of rooms that have a local
// socket and unsubscribes from the others. It decides from the adapter's
// current rooms rather than from the order of create/delete events, which
// concurrent joins and leaves can reorder.
//
// The dirty rooms are taken while subMu is held, so that once a call
// returns, every room marked before it has had its SUBSCRIBE written (by
// this call or by the one holding subMu before it): waitSubscribed relies on
// it.
func (b *AdapterBuilder) syncSubscriptions() {
	b.subMu.Lock()
	defer b.subMu.Unlock()

	b.dirtyMu.Lock()
	dirty := b.dirty
	b.dirty = make(map[string]adapterRoomRef, len(dirty))
	b.dirtyMu.Unlock()
	var add, remove []string
	for ch, ref := range dirty {
		_, have := b.applied[ch]
		want := ref.adapter.wantsRoom(ref.room)
		switch {
		case want && !have:
			add = append(add, ch)
			b.applied[ch] = struct{}{}
		case !want && have:
			remove = append(remove, ch)
			delete(b.applied, ch)
		}
	}
	if b.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.RequestTimeout)
	defer cancel()
	// go-redis records the channels even when the command fails and
	// resubscribes them when it reconnects.
	if len(add) > 0 {
		if err := b.ps.Subscribe(ctx, add...); err != nil {
			b.logLimited("subscribe", slog.LevelDebug, "adapter: subscribe failed, will retry on reconnect", "err", err)
		}
	}
	if len(remove) > 0 {
		if err := b.ps.Unsubscribe(ctx, remove...); err != nil {
			b.logLimited("unsubscribe", slog.LevelDebug, "adapter: unsubscribe failed", "err", err)
		}
	}
}

// handle decodes one message from Redis and applies it.
func (b *AdapterBuilder) handle(rm *goredis.Message) {
	var m wireMessage
	if err := decodeWire([]byte(rm.Payload), &m); err != nil {
		b.logLimited("decode", slog.LevelWarn, "adapter: undecodable message", "channel", rm.Channel, "err", err)
		return
	}
	if m.From == b.id {
		if m.Kind == kindHeartbeat && m.Nonce == b.nonce {
			b.unechoed.Store(0)
		}
		if m.Kind == kindHeartbeat && m.Nonce != "" && m.Nonce != b.nonce {
			b.logLimited("duplicate-id", slog.LevelError, "adapter: another instance uses this instance id; instance ids must be unique", "instance", b.id)
		}
		return
	}
	b.stats.received.Add(1)
	if h := b.opts.Hooks.Received; h != nil {
		h(m.Kind.String())
	}
	if m.Kind == kindGoodbye {
		b.dropNode(m.From, "goodbye")
		return
	}
	isNew := b.touchNode(m.From)
	if m.Kind == kindHeartbeat {
		b.noteFeatures(m.From, m.Features)
	}
	if isNew && m.Kind == kindHeartbeat {
		// A newcomer: answer at once so it counts us without waiting for
		// our next heartbeat.
		b.wakeHeartbeat()
	}
	switch m.Kind {
	case kindHeartbeat:
	case kindFetchSocketsReply, kindServerSideEmitReply, kindSocketsReply:
		b.reqMu.Lock()
		p := b.requests[m.Req]
		b.reqMu.Unlock()
		if p != nil {
			p.add(&m)
		}
	case kindBroadcastAckCount, kindBroadcastAckReply:
		if p := b.pendingAckFor(m.Req); p != nil {
			b.enqueueWork(m.Kind, func() {
				if m.Kind == kindBroadcastAckCount {
					p.count(m.Count)
				} else {
					p.ack(m.Data, nil)
				}
			})
		}
	default:
		a := b.adapter(m.Nsp)
		if a == nil {
			b.answerUnknownNamespace(&m)
			return
		}
		a.onRemote(&m)
	}
}

// answerUnknownNamespace answers requests for a namespace this instance does
// not have, so the requester does not wait for it.
func (b *AdapterBuilder) answerUnknownNamespace(m *wireMessage) {
	switch m.Kind {
	case kindFetchSockets:
		b.reply(m.From, &wireMessage{Kind: kindFetchSocketsReply, Req: m.Req})
	case kindBroadcastAck:
		b.reply(m.From, &wireMessage{Kind: kindBroadcastAckCount, Req: m.Req})
	case kindServerSideEmit:
		if m.WithAck {
			b.reply(m.From, &wireMessage{Kind: kindServerSideEmitReply, Req: m.Req})
		}
	case kindSocketsJoin, kindSocketsLeave:
		if m.Req != "" {
			b.reply(m.From, &wireMessage{Kind: kindSocketsReply, Req: m.Req})
		}
	}
}
