package sioadapter

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/redistag"
)

// Sharded Pub/Sub on Redis Cluster: see the package documentation for the
// channels and what order they keep.

// busPartitions is how many bus channels there are on Redis Cluster. Every
// instance listens to all of them and publishes on the one its id hashes to
// (busPartition), so that the bus traffic spreads over the masters while
// each instance's own bus messages stay in order. Every instance of a
// deployment must use the same number.
const busPartitions = 16

// shardCheckInterval is how often the adapter reloads the Redis Cluster
// slot map and moves the subscriptions whose slot changed master; Redis
// tells of most moves at once (a sunsubscribe push, a connection that
// breaks), this check catches the rest.
const shardCheckInterval = time.Second

// shardRetryInterval is how soon the check runs again while a wanted
// channel has no subscription (its master unreachable, or a move under
// way), and the least time between two checks.
const shardRetryInterval = 200 * time.Millisecond

// busPartition returns the bus channel an instance publishes on.
func busPartition(prefix, id string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return busPartitionChannel(prefix, int(h.Sum32()%busPartitions))
}

func busPartitionChannel(prefix string, i int) string {
	return prefix + ":bus:{b" + strconv.Itoa(i) + "}"
}

// shardNodeChannel is an instance's channel on Redis Cluster: its id is
// the hash tag, so that the answers to different instances spread.
func shardNodeChannel(prefix, id string) string {
	return prefix + ":node:{" + id + "}"
}

// shardRoomChannel is a room's channel on Redis Cluster. Its hash tag is
// the room's (redistag.Room), so that the room's keys may share its slot.
func shardRoomChannel(roomPrefix, nsp string, room socket.Room) string {
	return roomPrefix + nsp + ":" + redistag.Room(string(room))
}

// keySlot is the Redis Cluster hash slot of a key or shard channel: CRC16
// (XMODEM) of its hash tag, or of the whole name when it has none, modulo
// 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// seqs is, for each other instance and channel, the highest Seq handled.
// A message whose Seq is not higher is dropped: on one channel an
// instance's messages must come in the order it sent them, and while a
// master hands its slots over (CLUSTER FAILOVER), a message or two sent
// to the old master have been seen to arrive after later ones sent to the
// new one. A late message is thus lost rather than delivered out of order.
// An instance's numbers start at the time it started, in nanoseconds, so
// that they keep growing when it restarts under the same id.
type seqs struct {
	mu   sync.Mutex                   // guards last
	last map[string]map[string]uint64 // instance -> channel -> highest Seq handled
}

// fresh reports whether m comes after what was handled of its sender on
// channel, and records it. A message without Seq is always fresh.
func (q *seqs) fresh(channel string, m *wireMessage) bool {
	if m.Seq == 0 {
		return true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	byChannel := q.last[m.From]
	if byChannel == nil {
		byChannel = make(map[string]uint64)
		q.last[m.From] = byChannel
	}
	if m.Seq <= byChannel[channel] {
		return false
	}
	byChannel[channel] = m.Seq
	return true
}

// forgetChannels drops what is known of channels this instance no longer
// listens to, so that the table does not keep an entry for every room that
// ever had a local socket (a socket's own id is a room too). Once
// subscribed again, a channel accepts the next message of each sender:
// nothing sent while it was not subscribed can arrive on it.
func (q *seqs) forgetChannels(channels []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, byChannel := range q.last {
		for _, ch := range channels {
			delete(byChannel, ch)
		}
	}
}

// forget drops what is known of an instance that left.
func (q *seqs) forget(instance string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.last, instance)
}

// shardConn is one sharded subscription connection, to one master. Its
// SSUBSCRIBE and SUNSUBSCRIBE commands are written by a goroutine of its
// own (shardWrite), in the order they were queued, so that dialing a
// master that does not answer holds up no other connection.
type shardConn struct {
	addr   string
	client *goredis.Client // the master's, which ps is of
	ps     *goredis.PubSub
	done   chan struct{} // closed when the connection is given up

	qmu   sync.Mutex // guards queue
	queue []shardCmd
	wake  chan struct{} // tells shardWrite that queue is not empty
}

// shardCmd is an SSUBSCRIBE, or with unsubscribe set an SUNSUBSCRIBE, of
// channels of one slot.
type shardCmd struct {
	unsubscribe bool
	channels    []string
}

func newShardConn(addr string, client *goredis.Client, ps *goredis.PubSub) *shardConn {
	return &shardConn{addr: addr, client: client, ps: ps, done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// enqueue queues a command for shardWrite; it never blocks.
func (c *shardConn) enqueue(cmd shardCmd) {
	c.qmu.Lock()
	c.queue = append(c.queue, cmd)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take returns the queued commands and empties the queue.
func (c *shardConn) take() []shardCmd {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	q := c.queue
	c.queue = nil
	return q
}

// shardSubs are the sharded subscriptions of an instance on Redis Cluster:
// one connection per master serving a wanted channel, each channel
// subscribed on the connection to its slot's master.
//
// A channel is placed (SSUBSCRIBE written on its master's connection),
// then confirmed (Redis answered). It loses its place when Redis drops it
// (the slot moved: a sunsubscribe push), when its connection breaks or
// goes silent, when Redis refuses the SSUBSCRIBE (MOVED), or when the
// periodic check finds that its slot has another master; then it waits in
// unplaced until the check places it again. A message is handled only when
// it arrives on the connection where its channel is placed now, so that a
// channel moved to another connection never delivers from two.
type shardSubs struct {
	life       context.Context // the builder's: once done, nothing is written
	cc         *goredis.ClusterClient
	roomPrefix string   // + nsp + ":" + redistag.Room(room)
	always     []string // the bus partitions and this instance's channel

	op      sync.Mutex          // serializes what writes subscriptions; guards applied
	applied map[string]struct{} // room channels wanted

	state     sync.RWMutex // guards the following fields
	closed    bool
	conns     map[string]*shardConn // by master address
	where     map[string]*shardConn // wanted channel -> the connection it is placed on
	confirmed map[string]bool       // wanted and placed channel -> Redis confirmed it
	unplaced  map[string]struct{}   // wanted channels without a place
	changed   chan struct{}         // closed (and replaced) when a channel is confirmed or loses its place

	marks    roomMarks
	seqs     seqs
	kick     chan struct{}    // asks the check loop to run now
	start    func(*shardConn) // starts reading a new connection
	replaced *atomic.Uint64   // AdapterStats.Replaced
}

func newShardSubs(life context.Context, cc *goredis.ClusterClient, roomPrefix string, always ...string) *shardSubs {
	s := &shardSubs{
		life:       life,
		cc:         cc,
		roomPrefix: roomPrefix,
		always:     always,
		applied:    make(map[string]struct{}),
		conns:      make(map[string]*shardConn),
		where:      make(map[string]*shardConn),
		confirmed:  make(map[string]bool),
		unplaced:   make(map[string]struct{}),
		changed:    make(chan struct{}),
		marks:      roomMarks{marked: make(map[string]adapterRoomRef), wake: make(chan struct{}, 1)},
		kick:       make(chan struct{}, 1),
		replaced:   new(atomic.Uint64),
		seqs:       seqs{last: make(map[string]map[string]uint64)},
	}
	for _, ch := range always {
		s.unplaced[ch] = struct{}{}
	}
	return s
}

// ready reports whether every channel this instance always needs is
// confirmed and no wanted channel lacks a place.
func (s *shardSubs) ready() bool {
	s.state.RLock()
	defer s.state.RUnlock()
	if len(s.unplaced) > 0 {
		return false
	}
	for _, ch := range s.always {
		if !s.confirmed[ch] {
			return false
		}
	}
	return true
}

// gauges returns how many connections are open and how many wanted
// channels have no confirmed subscription.
func (s *shardSubs) gauges() (conns, unconfirmed int) {
	s.state.RLock()
	defer s.state.RUnlock()
	confirmed := 0
	for _, ok := range s.confirmed {
		if ok {
			confirmed++
		}
	}
	return len(s.conns), len(s.where) - confirmed + len(s.unplaced)
}

// owns reports whether channel is placed on c now.
func (s *shardSubs) owns(c *shardConn, channel string) bool {
	s.state.RLock()
	defer s.state.RUnlock()
	return s.where[channel] == c
}

// signalLocked wakes the waiters of changed; s.state is held for writing.
func (s *shardSubs) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// confirm records Redis's answer to an SSUBSCRIBE on c. It reports whether
// the channel is placed on c.
func (s *shardSubs) confirm(c *shardConn, channel string) bool {
	s.state.Lock()
	defer s.state.Unlock()
	if s.where[channel] != c {
		return false
	}
	if !s.confirmed[channel] {
		s.confirmed[channel] = true
		s.signalLocked()
	}
	return true
}

// dropped handles a sunsubscribe on c: Redis dropped the channel (its slot
// moved away) or answers an SUNSUBSCRIBE of ours. It reports whether the
// channel lost its place.
func (s *shardSubs) dropped(c *shardConn, channel string) bool {
	s.state.Lock()
	defer s.state.Unlock()
	if s.where[channel] != c {
		return false // ours: the channel is no longer wanted here
	}
	s.unplaceLocked(channel)
	s.signalLocked()
	s.kickCheck()
	return true
}

// refused handles an error answer on c (MOVED: the SSUBSCRIBE reached a
// master that no longer serves the slot): the channels not confirmed yet
// on c lose their place.
func (s *shardSubs) refused(c *shardConn) {
	s.state.Lock()
	defer s.state.Unlock()
	for ch, at := range s.where {
		if at == c && !s.confirmed[ch] {
			s.unplaceLocked(ch)
		}
	}
	s.signalLocked()
	s.kickCheck()
}

// lose gives up connection c: its channels lose their place.
func (s *shardSubs) lose(c *shardConn) {
	s.state.Lock()
	defer s.state.Unlock()
	s.loseLocked(c)
	s.signalLocked()
	s.kickCheck()
}

func (s *shardSubs) loseLocked(c *shardConn) {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.done)
	_ = c.ps.Close()
	if s.conns[c.addr] == c {
		delete(s.conns, c.addr)
	}
	for ch, at := range s.where {
		if at == c {
			s.unplaceLocked(ch)
		}
	}
}

func (s *shardSubs) unplaceLocked(channel string) {
	if _, ok := s.where[channel]; ok {
		s.replaced.Add(1)
	}
	delete(s.where, channel)
	delete(s.confirmed, channel)
	s.unplaced[channel] = struct{}{}
}

func (s *shardSubs) kickCheck() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// changedChan returns a channel closed at the next confirmation or loss.
func (s *shardSubs) changedChan() <-chan struct{} {
	s.state.RLock()
	defer s.state.RUnlock()
	return s.changed
}

// allConfirmed reports whether every channel of channels is confirmed.
func (s *shardSubs) allConfirmed(channels []string) bool {
	s.state.RLock()
	defer s.state.RUnlock()
	for _, ch := range channels {
		if !s.confirmed[ch] {
			return false
		}
	}
	return true
}

// close closes every connection.
func (s *shardSubs) close() {
	s.op.Lock()
	defer s.op.Unlock()
	s.state.Lock()
	defer s.state.Unlock()
	s.closed = true
	for _, c := range s.conns {
		s.loseLocked(c)
	}
}

// renewAll gives up every connection, so that the next check places every
// channel again on fresh ones.
func (s *shardSubs) renewAll() {
	s.op.Lock()
	defer s.op.Unlock()
	s.state.Lock()
	defer s.state.Unlock()
	for _, c := range s.conns {
		s.loseLocked(c)
	}
	s.signalLocked()
}

// sync subscribes to the channels of the marked rooms that have a local
// socket and unsubscribes from the others, like subscriptions.sync. Once it
// returns, every room marked before it has its SSUBSCRIBE written or waits
// in unplaced for the check.
func (s *shardSubs) sync(timeout time.Duration) error {
	s.op.Lock()
	defer s.op.Unlock()
	add, remove := applyMarks(s.marks.take(), s.applied)
	if s.life.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.life, timeout)
	defer cancel()
	s.unsubscribeLocked(ctx, remove)
	return s.placeLocked(ctx, add)
}

// unsubscribeLocked forgets channels and writes SUNSUBSCRIBE for them on
// their connections; s.op is held.
func (s *shardSubs) unsubscribeLocked(ctx context.Context, channels []string) {
	if len(channels) == 0 {
		return
	}
	bySlot := make(map[*shardConn]map[int][]string)
	s.state.Lock()
	for _, ch := range channels {
		if c := s.where[ch]; c != nil {
			if bySlot[c] == nil {
				bySlot[c] = make(map[int][]string)
			}
			slot := keySlot(ch)
			bySlot[c][slot] = append(bySlot[c][slot], ch)
		}
		delete(s.where, ch)
		delete(s.confirmed, ch)
		delete(s.unplaced, ch)
	}
	s.state.Unlock()
	s.seqs.forgetChannels(channels)
	for c, slots := range bySlot {
		for _, group := range slots {
			// A failure leaves the channel subscribed on a connection that
			// ignores its messages (owns).
			c.enqueue(shardCmd{unsubscribe: true, channels: group})
		}
	}
}

// placeLocked subscribes to channels, each on the connection to its slot's
// master, one SSUBSCRIBE per slot (one command may not name channels of
// different slots); s.op is held. A channel that cannot be placed waits in
// unplaced for the check; the first error is returned.
func (s *shardSubs) placeLocked(ctx context.Context, channels []string) error {
	return s.placeVerifiedLocked(ctx, channels, nil)
}

// placeVerifiedLocked is placeLocked placing channels only on the masters
// that verified maps to true, when it is not nil; the others wait (placed
// channels stay where they are, the others in unplaced).
func (s *shardSubs) placeVerifiedLocked(ctx context.Context, channels []string, verified map[string]bool) error {
	if len(channels) == 0 {
		return nil
	}
	type group struct {
		addr     string
		client   *goredis.Client
		channels []string
	}
	groups := make(map[int]*group) // by slot
	var firstErr error
	noteErr := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	var failed []string
	for _, ch := range channels {
		slot := keySlot(ch)
		if g := groups[slot]; g != nil {
			g.channels = append(g.channels, ch)
			continue
		}
		node, err := s.cc.MasterForKey(ctx, ch)
		if err != nil {
			noteErr(fmt.Errorf("redis: adapter: the Redis Cluster master of %q: %w", ch, err))
			failed = append(failed, ch)
			continue
		}
		if verified != nil && !verified[node.Options().Addr] {
			s.state.RLock()
			_, placed := s.where[ch]
			s.state.RUnlock()
			if !placed {
				failed = append(failed, ch)
			}
			continue
		}
		groups[slot] = &group{addr: node.Options().Addr, client: node, channels: []string{ch}}
	}
	slots := make([]int, 0, len(groups))
	for slot := range groups {
		slots = append(slots, slot)
	}
	slices.Sort(slots)
	for _, slot := range slots {
		g := groups[slot]
		s.state.Lock()
		if s.closed {
			s.state.Unlock()
			return nil
		}
		c := s.conns[g.addr]
		fresh := c == nil
		if fresh {
			// No channel yet: the connection is dialed by the first
			// command, on the connection's own goroutines.
			c = newShardConn(g.addr, g.client, g.client.SSubscribe(ctx))
			s.conns[g.addr] = c
		}
		moved := make(map[*shardConn][]string)
		for _, ch := range g.channels {
			if old := s.where[ch]; old != nil && old != c {
				moved[old] = append(moved[old], ch)
				s.replaced.Add(1)
			}
			s.where[ch] = c
			delete(s.confirmed, ch)
			delete(s.unplaced, ch)
		}
		s.state.Unlock()
		if fresh {
			s.start(c)
		}
		for old, chs := range moved {
			// Best effort: its messages are ignored from now on anyway.
			old.enqueue(shardCmd{unsubscribe: true, channels: chs})
		}
		c.enqueue(shardCmd{channels: g.channels})
	}
	if len(failed) > 0 {
		s.state.Lock()
		for _, ch := range failed {
			s.unplaceLocked(ch)
		}
		s.state.Unlock()
		s.kickCheck()
	}
	return firstErr
}

// check reloads the slot map and places every wanted channel that has no
// place or sits on a connection to a master that no longer serves its
// slot. The slot map comes from one node, whose view may lag while a
// failover or a slot move spreads over the cluster, so the nodes concerned
// are asked themselves: a channel leaves its connection only when that
// node's own view no longer gives it the slot (normally it has said so
// already with a sunsubscribe push), and it goes only to a node that says
// it is a master (ROLE). Otherwise a channel could move back to the old
// master, or to one that became a replica (which accepts SSUBSCRIBE and
// SPUBLISH of its own), and hear what stale publishers send there out of
// order with what it heard on the new master. It returns the first error.
func (s *shardSubs) check(timeout time.Duration) error {
	if s.life.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.life, timeout)
	defer cancel()
	// ForEachMaster reloads the slot map before it returns; the function
	// does nothing. The reload also serves the publishing side, which
	// routes SPUBLISH by the same map.
	reloadErr := s.cc.ForEachMaster(ctx, func(context.Context, *goredis.Client) error { return nil })
	if reloadErr != nil {
		reloadErr = fmt.Errorf("redis: adapter: reloading the Redis Cluster slot map: %w", reloadErr)
	}
	candidates, current := s.misplaced(ctx)
	if len(candidates) == 0 {
		return reloadErr
	}
	// Outside s.op: a master that does not answer holds up no join.
	keep := make(map[string]bool) // channel -> its node still serves its slot
	views := make(map[*shardConn][]goredis.ClusterSlot)
	for i, ch := range candidates {
		c := current[i]
		if c == nil {
			continue
		}
		view, seen := views[c]
		if !seen {
			rctx, rcancel := context.WithTimeout(ctx, shardRetryInterval)
			view, _ = c.client.ClusterSlots(rctx).Result() //nolint:staticcheck // the view go-redis itself reads; CLUSTER SHARDS says the same
			rcancel()
			views[c] = view
		}
		slot := keySlot(ch)
		for _, r := range view {
			if r.Start <= slot && slot <= r.End && len(r.Nodes) > 0 && r.Nodes[0].Addr == c.addr {
				keep[ch] = true
			}
		}
	}
	verified := make(map[string]bool)
	var roleErr error
	for _, ch := range candidates {
		if keep[ch] {
			continue
		}
		node, err := s.cc.MasterForKey(ctx, ch)
		if err != nil {
			continue
		}
		addr := node.Options().Addr
		if _, done := verified[addr]; done {
			continue
		}
		rctx, rcancel := context.WithTimeout(ctx, shardRetryInterval)
		role, err := node.Do(rctx, "ROLE").Slice()
		rcancel()
		verified[addr] = err == nil && len(role) > 0 && role[0] == "master"
		if err != nil && roleErr == nil {
			roleErr = fmt.Errorf("redis: adapter: ROLE on %s: %w", addr, err)
		}
	}
	s.op.Lock()
	defer s.op.Unlock()
	// What still needs a place now that s.op is held again.
	again, _ := s.misplacedLocked(ctx)
	again = slices.DeleteFunc(again, func(ch string) bool { return keep[ch] })
	return errors.Join(reloadErr, roleErr, s.placeVerifiedLocked(ctx, again, verified))
}

// misplaced returns the wanted channels that have no place or sit on a
// connection to another node than their slot's master in the slot map,
// and for each the connection it sits on (nil: none).
func (s *shardSubs) misplaced(ctx context.Context) ([]string, []*shardConn) {
	s.op.Lock()
	defer s.op.Unlock()
	return s.misplacedLocked(ctx)
}

func (s *shardSubs) misplacedLocked(ctx context.Context) ([]string, []*shardConn) {
	wanted := slices.Clone(s.always)
	for ch := range s.applied {
		wanted = append(wanted, ch)
	}
	s.state.RLock()
	where := make(map[string]*shardConn, len(wanted))
	for _, ch := range wanted {
		if c := s.where[ch]; c != nil {
			where[ch] = c
		}
	}
	s.state.RUnlock()
	var out []string
	var conns []*shardConn
	for _, ch := range wanted {
		c := where[ch]
		if c == nil {
			out, conns = append(out, ch), append(conns, nil)
			continue
		}
		node, err := s.cc.MasterForKey(ctx, ch)
		if err == nil && node.Options().Addr != c.addr {
			out, conns = append(out, ch), append(conns, c)
		}
	}
	return out, conns
}

// unplacedAny reports whether a wanted channel has no place.
func (s *shardSubs) unplacedAny() bool {
	s.state.RLock()
	defer s.state.RUnlock()
	return len(s.unplaced) > 0
}

// shardWrite writes the commands queued on c until it is given up. A
// failed SSUBSCRIBE gives the connection up: its channels are placed again
// by the check.
func (b *AdapterBuilder) shardWrite(c *shardConn) {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-c.done:
			return
		case <-c.wake:
		}
		for _, cmd := range c.take() {
			ctx, cancel := context.WithTimeout(b.ctx, b.opts.RequestTimeout)
			var err error
			if cmd.unsubscribe {
				err = c.ps.SUnsubscribe(ctx, cmd.channels...)
			} else {
				err = c.ps.SSubscribe(ctx, cmd.channels...)
			}
			cancel()
			// After a failed write go-redis may have dialed again and
			// subscribed anew to whatever it remembers, in one command
			// (CROSSSLOT when the channels span slots): give it up.
			if err != nil {
				if b.ctx.Err() == nil {
					b.logLimited("shard-subscribe:"+c.addr, slog.LevelWarn, "adapter: Redis Cluster subscription failed, will retry", "node", c.addr, "err", err)
				}
				b.shard.lose(c)
				return
			}
		}
	}
}

// shardReceive reads one sharded subscription connection until it is
// given up. A connection that goes silent (not even a PONG) is given up,
// as one that breaks is; its channels are placed again by the check.
func (b *AdapterBuilder) shardReceive(c *shardConn) {
	defer b.wg.Done()
	s := b.shard
	silent := 0
	for b.ctx.Err() == nil {
		select {
		case <-c.done:
			return
		default:
		}
		msg, err := c.ps.ReceiveTimeout(b.ctx, b.opts.HeartbeatInterval)
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			select {
			case <-c.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				silent++
				if silent >= 3 {
					b.log.Warn("adapter: Redis Cluster subscription silent, reconnecting", "node", c.addr)
					s.lose(c)
					return
				}
				ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
				err := c.ps.Ping(ctx)
				cancel()
				if err != nil {
					// As in shardWrite.
					s.lose(c)
					return
				}
				continue
			}
			var refused goredis.Error
			if errors.As(err, &refused) {
				b.logLimited("ssubscribe-refused", slog.LevelInfo, "adapter: Redis Cluster refused a subscription, placing it again", "node", c.addr, "err", err)
				s.refused(c)
				continue
			}
			b.logLimited("shard-lost:"+c.addr, slog.LevelWarn, "adapter: Redis Cluster subscription lost", "node", c.addr, "err", err)
			s.lose(c)
			return
		}
		silent = 0
		switch m := msg.(type) {
		case *goredis.Subscription:
			switch m.Kind {
			case "ssubscribe":
				if s.confirm(c, m.Channel) && m.Channel == b.busChannel {
					// Heartbeats published before this subscription may
					// never come back.
					b.nodes.unechoed.Store(0)
				}
			case "sunsubscribe":
				if s.dropped(c, m.Channel) {
					b.logLimited("shard-moved", slog.LevelInfo, "adapter: Redis Cluster dropped a subscription (its slot moved), placing it again", "node", c.addr, "channel", m.Channel)
				}
			}
		case *goredis.Message:
			if s.owns(c, m.Channel) {
				b.handleChecked(m, s.seqs.fresh)
			}
		}
	}
}

// shardCheckLoop runs the sharded subscriptions' check every
// shardCheckInterval, sooner when asked or while a channel lacks a place,
// and watches over this instance's heartbeats coming back (see echoLost)
// and for instances of an older build (see checkClassicPeers).
func (b *AdapterBuilder) shardCheckLoop() {
	defer b.wg.Done()
	s := b.shard
	wasReady := false
	var lastClassic time.Time
	for {
		err := s.check(b.opts.RequestTimeout)
		if err != nil && b.ctx.Err() == nil {
			b.logLimited("shard-check", slog.LevelDebug, "adapter: Redis Cluster subscriptions not all placed, will retry", "err", err)
		}
		if ready := s.ready(); ready != wasReady {
			wasReady = ready
			if ready {
				b.log.Info("adapter: Redis subscription ready")
				b.nodes.wakeHeartbeat()
			}
		}
		if b.echoLost() {
			b.log.Warn("adapter: this instance's own heartbeats no longer reach its Redis Cluster subscription, subscribing again")
			s.renewAll()
			b.nodes.unechoed.Store(0)
			continue
		}
		if time.Since(lastClassic) >= b.opts.HeartbeatTimeout {
			lastClassic = time.Now()
			b.checkClassicPeers()
		}
		next := shardCheckInterval
		if s.unplacedAny() {
			next = shardRetryInterval
		}
		t := time.NewTimer(next)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.kick:
			t.Stop()
			if !b.wait(shardRetryInterval / 4) {
				return
			}
		}
	}
}

// checkClassicPeers logs an error when a master has subscribers to the
// classic bus channel of this prefix: instances of a build from before
// sharded Pub/Sub, which cannot hear this one nor be heard by it.
func (b *AdapterBuilder) checkClassicPeers() {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.RequestTimeout)
	defer cancel()
	classic := b.opts.Prefix + ":bus"
	var mu sync.Mutex
	total := int64(0)
	_ = b.shard.cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
		n, err := node.PubSubNumSub(ctx, classic).Result()
		if err == nil {
			mu.Lock()
			total += n[classic]
			mu.Unlock()
		}
		return nil
	})
	if total > 0 {
		b.logLimited("classic-peers", slog.LevelError, "adapter: instances of an older chatd build use classic Pub/Sub on this Redis Cluster; they and this instance cannot hear each other: restart every instance on the same version", "subscribers", total, "channel", classic)
	}
}

// waitShardSubscribed is waitSubscribed on Redis Cluster: it returns once
// Redis has confirmed the SSUBSCRIBE of every room of rooms that has a
// local socket, on the connection to its slot's master.
func (b *AdapterBuilder) waitShardSubscribed(ctx context.Context, a *RedisAdapter, rooms []socket.Room) error {
	s := b.shard
	for {
		if b.closed.Load() {
			return ErrAdapterClosed
		}
		changed := s.changedChan()
		var channels []string
		for _, r := range rooms {
			if a.wantsRoom(r) {
				b.markRoom(a, r)
				channels = append(channels, b.roomChannel(a.name, r))
			}
		}
		if len(channels) == 0 {
			return nil
		}
		b.syncSubscriptions()
		if s.allConfirmed(channels) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("redis: Redis has not confirmed the subscription to %d room(s) of namespace %q: %w", len(channels), a.name, context.Cause(ctx))
		case <-b.ctx.Done():
			return ErrAdapterClosed
		}
	}
}
