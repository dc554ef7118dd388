package sioadapter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
		ps := b.subs.current.Load()
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
					b.subs.subscribed.Store(false)
					b.renewPubSub()
					b.subs.barriers.resetAll()
					b.nodes.unechoed.Store(0)
					silent = 0
					continue
				}
				if silent >= 3 {
					b.log.Warn("adapter: Redis subscription silent, reconnecting")
					b.subs.subscribed.Store(false)
					b.renewPubSub()
					b.subs.barriers.resetAll()
					silent = 0
					continue
				}
				ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
				_ = ps.Ping(ctx)
				cancel()
				continue
			}
			if b.subs.subscribed.Swap(false) {
				b.log.Warn("adapter: Redis subscription lost", "err", err)
			}
			// go-redis reconnects and subscribes again; a PING written on
			// the lost connection gets no PONG.
			b.subs.barriers.resetAll()
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
				b.nodes.unechoed.Store(0)
				if !b.subs.subscribed.Swap(true) {
					b.log.Info("adapter: Redis subscription ready")
					// Announce ourselves now and refresh Ready.
					b.nodes.wakeHeartbeat()
				}
			}
		case *goredis.Message:
			b.handle(m)
		case *goredis.Pong:
			b.subs.barriers.pass(m.Payload)
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
	if err := b.subs.renew(b.opts.RequestTimeout); err != nil {
		b.log.Debug("adapter: resubscribe failed, will retry", "err", err)
	}
}

// markRoom asks the subscription loop to check whether this instance still
// needs the room's channel.
func (b *AdapterBuilder) markRoom(a *RedisAdapter, room socket.Room) {
	b.roomMarks().mark(b.roomChannel(a.name, room), adapterRoomRef{adapter: a, room: room})
}

// roomMarks returns the rooms whose channel the subscription loop is to
// check.
func (b *AdapterBuilder) roomMarks() *roomMarks {
	if b.shard != nil {
		return &b.shard.marks
	}
	return &b.subs.marks
}

// roomChannel returns the channel of a room of namespace nsp.
func (b *AdapterBuilder) roomChannel(nsp string, room socket.Room) string {
	if b.shard != nil {
		return shardRoomChannel(b.shard.roomPrefix, nsp, room)
	}
	return b.subs.roomChannel(nsp, room)
}

func (b *AdapterBuilder) subscriptionLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.roomMarks().wake:
		}
		b.syncSubscriptions()
	}
}

// syncSubscriptions subscribes to the channels of rooms that have a local
// socket and unsubscribes from the others (see subscriptions.sync).
func (b *AdapterBuilder) syncSubscriptions() {
	if b.shard != nil {
		if err := b.shard.sync(b.opts.RequestTimeout); err != nil {
			b.logLimited("subscribe", slog.LevelDebug, "adapter: subscribe failed, will retry", "err", err)
		}
		return
	}
	subErr, unsubErr := b.subs.sync(b.opts.RequestTimeout)
	if subErr != nil {
		b.logLimited("subscribe", slog.LevelDebug, "adapter: subscribe failed, will retry on reconnect", "err", subErr)
	}
	if unsubErr != nil {
		b.logLimited("unsubscribe", slog.LevelDebug, "adapter: unsubscribe failed", "err", unsubErr)
	}
}

// handle decodes one message from Redis and applies it.
func (b *AdapterBuilder) handle(rm *goredis.Message) {
	b.handleChecked(rm, nil)
}

// handleChecked is handle dropping the other instances' messages for which
// fresh, when not nil, reports false (see seqs).
func (b *AdapterBuilder) handleChecked(rm *goredis.Message, fresh func(channel string, m *wireMessage) bool) {
	var m wireMessage
	if err := decodeWire([]byte(rm.Payload), &m); err != nil {
		b.logLimited("decode", slog.LevelWarn, "adapter: undecodable message", "channel", rm.Channel, "err", err)
		return
	}
	if m.From == b.id {
		if m.Kind == kindHeartbeat && m.Nonce == b.nonce {
			b.nodes.unechoed.Store(0)
		}
		if m.Kind == kindHeartbeat && m.Nonce != "" && m.Nonce != b.nonce {
			b.logLimited("duplicate-id", slog.LevelError, "adapter: another instance uses this instance id; instance ids must be unique", "instance", b.id)
		}
		return
	}
	if fresh != nil && !fresh(rm.Channel, &m) {
		b.logLimited("late", slog.LevelInfo, "adapter: a message arrived after a later one of its sender on its channel (a failover?): dropped", "from", m.From, "channel", rm.Channel)
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
		b.nodes.noteFeatures(m.From, m.Features)
		if sharded := m.Features&featureSharded != 0; sharded != (b.shard != nil) {
			// It hears only part of what this instance sends (and the
			// reverse): its broadcasts travel on other channels.
			b.logLimited("pubsub-kind:"+m.From, slog.LevelError, "adapter: another instance does not use the same kind of Redis Pub/Sub (sharded on Redis Cluster, classic elsewhere); they cannot serve one set of rooms: run the same chatd version on the same Redis everywhere",
				"instance", m.From, "sharded_here", b.shard != nil, "sharded_there", sharded)
		}
	}
	if isNew && m.Kind == kindHeartbeat {
		// A newcomer: answer at once so it counts us without waiting for
		// our next heartbeat.
		b.nodes.wakeHeartbeat()
	}
	switch m.Kind {
	case kindHeartbeat:
	case kindFetchSocketsReply, kindServerSideEmitReply, kindSocketsReply:
		if p := b.reqs.get(m.Req); p != nil {
			p.add(&m)
		}
	case kindBroadcastAckCount, kindBroadcastAckReply:
		if p := b.reqs.ack(m.Req); p != nil {
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

// subscriptions is the subscription connection and what is subscribed on
// it: the bus and this instance's channel, always, and the channels of the
// rooms that have a local socket.
type subscriptions struct {
	life       context.Context // the builder's: once done, nothing is written
	client     goredis.UniversalClient
	roomPrefix string   // + nsp + ":" + room
	always     []string // the bus and this instance's channel

	mu      sync.Mutex // guards the following fields
	ps      *goredis.PubSub
	applied map[string]struct{} // room channels subscribed on ps

	current    atomic.Pointer[goredis.PubSub] // ps, for the receiving goroutine
	subscribed atomic.Bool                    // the bus subscription is confirmed on the current connection
	marks      roomMarks
	barriers   barriers
}

func newSubscriptions(life context.Context, client goredis.UniversalClient, roomPrefix string, always ...string) *subscriptions {
	return &subscriptions{
		life:       life,
		client:     client,
		roomPrefix: roomPrefix,
		always:     always,
		applied:    make(map[string]struct{}),
		marks:      roomMarks{marked: make(map[string]adapterRoomRef), wake: make(chan struct{}, 1)},
		barriers:   barriers{waiting: make(map[string]chan struct{}), reset: make(chan struct{})},
	}
}

// start opens the subscription connection and subscribes to the channels
// every instance always listens to.
func (s *subscriptions) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ps = s.client.Subscribe(ctx)
	s.current.Store(s.ps)
	return s.ps.Subscribe(ctx, s.always...)
}

// close closes the subscription connection.
func (s *subscriptions) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.ps.Close()
}

func (s *subscriptions) roomChannel(nsp string, room socket.Room) string {
	return s.roomPrefix + nsp + ":" + string(room)
}

// renew replaces the subscription connection, subscribing again to every
// channel, within timeout.
func (s *subscriptions) renew(timeout time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life.Err() != nil {
		return nil
	}
	_ = s.ps.Close()
	channels := slices.Clone(s.always)
	for ch := range s.applied {
		channels = append(channels, ch)
	}
	ctx, cancel := context.WithTimeout(s.life, timeout)
	defer cancel()
	s.ps = s.client.Subscribe(ctx)
	s.current.Store(s.ps)
	return s.ps.Subscribe(ctx, channels...)
}

// sync subscribes to the channels of the marked rooms that have a local
// socket and unsubscribes from the others, each command within timeout. It
// decides from the adapter's current rooms rather than from the order of
// create/delete events, which concurrent joins and leaves can reorder.
//
// The marked rooms are taken while s.mu is held, so that once a call
// returns, every room marked before it has had its SUBSCRIBE written (by
// this call or by the one holding s.mu before it): waitSubscribed relies on
// it.
func (s *subscriptions) sync(timeout time.Duration) (subErr, unsubErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	add, remove := applyMarks(s.marks.take(), s.applied)
	if s.life.Err() != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(s.life, timeout)
	defer cancel()
	// go-redis records the channels even when the command fails and
	// resubscribes them when it reconnects.
	if len(add) > 0 {
		subErr = s.ps.Subscribe(ctx, add...)
	}
	if len(remove) > 0 {
		unsubErr = s.ps.Unsubscribe(ctx, remove...)
	}
	return subErr, unsubErr
}

// writeBarrier sends PING token on the subscription connection, after the
// SUBSCRIBE commands written so far, within timeout.
func (s *subscriptions) writeBarrier(ctx context.Context, token string, timeout time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life.Err() != nil {
		return ErrAdapterClosed
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.ps.Ping(ctx, token)
}

// roomMarks are the rooms whose channel the subscription loop is to check:
// a room was created or deleted in a namespace's adapter, or a caller waits
// for its subscription.
type roomMarks struct {
	wake chan struct{} // wakes subscriptionLoop

	mu     sync.Mutex // guards the following fields
	marked map[string]adapterRoomRef
}

// mark adds a room, by its channel, and wakes the subscription loop.
func (m *roomMarks) mark(channel string, ref adapterRoomRef) {
	m.mu.Lock()
	m.marked[channel] = ref
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// take returns the marked rooms and clears the marks.
func (m *roomMarks) take() map[string]adapterRoomRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	marked := m.marked
	m.marked = make(map[string]adapterRoomRef, len(marked))
	return marked
}

// barriers are the PINGs written on the subscription connection whose PONG
// someone waits for (see the comment at the top of membership.go).
type barriers struct {
	seq atomic.Uint64

	mu      sync.Mutex               // guards the following fields
	waiting map[string]chan struct{} // PING payload -> closed when its PONG arrives
	reset   chan struct{}            // closed (and replaced) when the subscription connection may have dropped
}

// add registers a new PING payload, unique to this process (nonce), whose
// PONG closes passed.
func (bs *barriers) add(nonce string, passed chan struct{}) string {
	token := "chatd-barrier:" + nonce + ":" + strconv.FormatUint(bs.seq.Add(1), 36)
	bs.mu.Lock()
	bs.waiting[token] = passed
	bs.mu.Unlock()
	return token
}

// pass is called with the payload of every PONG received.
func (bs *barriers) pass(payload string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	passed, ok := bs.waiting[payload]
	if !ok {
		return // a keepalive PING's, or a barrier given up
	}
	delete(bs.waiting, payload)
	select {
	case <-passed:
	default:
		close(passed)
	}
}

// drop gives up the barriers of tokens.
func (bs *barriers) drop(tokens []string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, t := range tokens {
		delete(bs.waiting, t)
	}
}

// resetChan returns a channel closed when the subscription connection may
// have been replaced since the call.
func (bs *barriers) resetChan() <-chan struct{} {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.reset
}

// resetAll tells the waiting barriers that their PING may be lost.
func (bs *barriers) resetAll() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	close(bs.reset)
	bs.reset = make(chan struct{})
}

// applyMarks decides, for marked rooms, which channels to subscribe to (a
// room that has a local socket and no subscription yet) and which to leave
// (one subscribed that has none any more), and records the outcome in
// applied. The classic and the sharded subscriptions share it.
func applyMarks(marked map[string]adapterRoomRef, applied map[string]struct{}) (add, remove []string) {
	for ch, ref := range marked {
		_, have := applied[ch]
		want := ref.adapter.wantsRoom(ref.room)
		switch {
		case want && !have:
			add = append(add, ch)
			applied[ch] = struct{}{}
		case !want && have:
			remove = append(remove, ch)
			delete(applied, ch)
		}
	}
	return add, remove
}
