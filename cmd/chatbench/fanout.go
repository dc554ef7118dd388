package main

// The fan-out scenario, kept in one file (about 500 lines): its senders,
// receivers, windows and report share one run's state, and read best together.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A message's text carries what its receivers need to account for it:
// "<send time ns>:<sender index>:<sequence>:" then padding to -text-bytes.
// The send time is the generator's monotonic clock, so latency is measured
// on one clock.
const minTextBytes = 40

// Send states of one message.
const (
	sentPending uint8 = iota // sent, no ack yet
	sentOK                   // acked with ok: true
	sentFailed               // acked with ok: false
)

// maxSeq bounds a sequence number taken from a received text, so that a
// corrupt one cannot make chatbench allocate without bound.
const maxSeq = 1 << 26

// member is the fan-out state of one connection.
type member struct {
	f    *fanoutRun
	idx  int
	room int
	pos  int // index within the room

	mu     sync.Mutex // guards the following fields
	sent   []uint8    // send state by sequence number
	sentAt []int64    // send time by sequence number, ns since base
	recv   [][]uint16 // deliveries received by sender position and sequence number

	frameHead []byte // `42` then the ack id follows
	frameRoom []byte // `["message",{"room":"r12","text":"`
}

// window is one measured sending period (a fanout run, a capacity step).
type window struct {
	start   int64        // first send, ns since base
	measure int64        // sends from here on are measured (after warmup)
	until   atomic.Int64 // sends before this are measured; MaxInt64 while sending
	lat     histogram    // send to receipt, measured sends
	latMax  atomic.Int64 // largest latency since the last progress line, ns
	ack     histogram    // send to ack, measured sends

	sent      atomic.Int64
	acked     atomic.Int64
	ackFailed atomic.Int64
	delivered atomic.Int64 // deliveries of this window's sends
	firstErr  atomic.Pointer[string]
}

// fanoutRun is a fan-out over R rooms of M members.
type fanoutRun struct {
	r       *runner
	rooms   int
	members int
	clients []*client
	states  []*member
	win     atomic.Pointer[window]

	delivered  atomic.Int64 // every delivery, any window
	duplicates atomic.Int64 // deliveries seen more than once
	unexpected atomic.Int64 // deliveries chatbench never sent, or to the wrong room
	pad        []byte
}

func (r *runner) newFanout(ctx context.Context) (*fanoutRun, error) {
	o := r.o
	f := &fanoutRun{r: r, rooms: o.rooms, members: o.members}
	f.pad = bytes.Repeat([]byte("x"), o.textBytes)
	n := o.rooms * o.members
	f.states = make([]*member, n)
	for i := range f.states {
		m := &member{f: f, idx: i, room: i / o.members, pos: i % o.members, recv: make([][]uint16, o.members)}
		m.frameHead = []byte("42")
		m.frameRoom = []byte(fmt.Sprintf(`["message",{"room":%q,"text":"`, f.roomName(m.room)))
		f.states[i] = m
	}
	f.win.Store(&window{})
	clients, err := r.connectAll(ctx, n, f.onData, func(i int) any { return f.states[i] }, func(i int) string {
		return f.roomName(i / o.members)
	})
	if err != nil {
		return nil, err
	}
	f.clients = clients
	return f, nil
}

func (f *fanoutRun) roomName(i int) string { return fmt.Sprintf("bench-%s-r%d", f.r.runID, i) }

// onData handles message acks and deliveries on a connection's read
// goroutine.
func (f *fanoutRun) onData(c *client, b []byte, at int64) {
	m, _ := c.state.(*member)
	if m == nil {
		return
	}
	switch {
	case bytes.HasPrefix(b, prefixAck):
		m.onAck(b[len(prefixAck):], at)
	case bytes.HasPrefix(b, prefixMessage):
		m.onMessage(b, at)
	}
	// presence, membership and the like are ignored
}

// onAck accounts for the ack of one of m's sends: "<seq>[{...,"ok":true}]".
func (m *member) onAck(b []byte, at int64) {
	seq, rest, ok := parseUint(b)
	if !ok {
		return
	}
	good := bytes.Contains(rest, []byte(`"ok":true`))
	m.mu.Lock()
	if seq >= uint64(len(m.sent)) || m.sent[seq] != sentPending {
		m.mu.Unlock()
		m.f.unexpected.Add(1)
		return
	}
	sentAt := m.sentAt[seq]
	if good {
		m.sent[seq] = sentOK
	} else {
		m.sent[seq] = sentFailed
	}
	m.mu.Unlock()
	w := m.f.win.Load()
	if sentAt < w.start {
		return
	}
	if good {
		w.acked.Add(1)
	} else {
		w.ackFailed.Add(1)
		s := clip(rest)
		w.firstErr.CompareAndSwap(nil, &s)
	}
	if sentAt >= w.measure && sentAt < w.until.Load() {
		w.ack.record(at - sentAt)
	}
}

// onMessage accounts for one delivery: 42["message",{..."text":"<ns>:<idx>:<seq>:...
func (m *member) onMessage(b []byte, at int64) {
	f := m.f
	i := bytes.Index(b, keyText)
	if i < 0 {
		f.unexpected.Add(1)
		return
	}
	sentAt, rest, ok1 := parseUint(b[i+len(keyText):])
	idx, rest, ok2 := parseUint(skipColon(rest))
	seq, _, ok3 := parseUint(skipColon(rest))
	if !ok1 || !ok2 || !ok3 || idx >= uint64(len(f.states)) || seq >= maxSeq {
		f.unexpected.Add(1)
		return
	}
	sender := f.states[idx]
	if sender.room != m.room || sender == m {
		f.unexpected.Add(1)
		return
	}
	m.mu.Lock()
	counts := m.recv[sender.pos]
	if seq >= uint64(len(counts)) {
		grown := make([]uint16, max(seq+1, uint64(2*len(counts))))
		copy(grown, counts)
		counts = grown
		m.recv[sender.pos] = counts
	}
	counts[seq]++
	dup := counts[seq] > 1
	m.mu.Unlock()
	f.delivered.Add(1)
	if dup {
		f.duplicates.Add(1)
	}
	w := f.win.Load()
	st := int64(sentAt) //nolint:gosec // a Unix time in nanoseconds fits an int64
	if st < w.start {
		return
	}
	w.delivered.Add(1)
	if st >= w.measure && st < w.until.Load() {
		w.lat.record(at - st)
		for d := at - st; ; {
			m := w.latMax.Load()
			if d <= m || w.latMax.CompareAndSwap(m, d) {
				break
			}
		}
	}
}

func skipColon(b []byte) []byte {
	if len(b) > 0 && b[0] == ':' {
		return b[1:]
	}
	return b
}

// send emits one message from m and records it; buf is scratch space.
func (m *member) send(c *client, buf []byte) ([]byte, error) {
	m.mu.Lock()
	seq := len(m.sent)
	m.sent = append(m.sent, sentPending)
	now := c.now()
	m.sentAt = append(m.sentAt, now)
	m.mu.Unlock()

	b := append(buf[:0], m.frameHead...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, m.frameRoom...)
	n0 := len(b)
	b = strconv.AppendInt(b, now, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(m.idx), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ':')
	if pad := m.f.r.o.textBytes - (len(b) - n0); pad > 0 {
		b = append(b, m.f.pad[:pad]...)
	}
	b = append(b, `"}]`...)
	return b, c.write(b)
}

// stepResult is the outcome of one sending period.
type stepResult struct {
	Rate         float64 `json:"rate"`
	SentRate     float64 `json:"sent_rate"`
	Seconds      float64 `json:"seconds"`
	Sent         int64   `json:"sent"`
	Acked        int64   `json:"acked"`
	AckFailed    int64   `json:"ack_failed"`
	Unacked      int64   `json:"unacked"`
	Expected     int64   `json:"expected"`
	Delivered    int64   `json:"delivered"`
	Lost         int64   `json:"lost"`
	Duplicates   int64   `json:"duplicates"`
	Unexpected   int64   `json:"unexpected"`
	Dropped      int     `json:"dropped_connections"`
	DeliveriesPS float64 `json:"deliveries_per_s"`
	// CPUPerDelivery is the servers' CPU time per delivery, in
	// microseconds: what one message to one member costs.
	CPUPerDelivery *float64 `json:"server_cpu_us_per_delivery,omitempty"`
	Latency        latency  `json:"latency"`
	AckLatency     latency  `json:"ack_latency"`
	SendLagMaxMS   float64  `json:"send_lag_max_ms"`
	Server         usage    `json:"server"`
	// Redis is what the -redis-nodes spent on the step's messages
	// (warm-up included, as in Sent).
	Redis         *redisUsage `json:"redis,omitempty"`
	FirstError    string      `json:"first_error,omitempty"`
	Pass          *bool       `json:"pass,omitempty"`
	GeneratorSlow bool        `json:"generator_limited,omitempty"`
	// Disturbed marks a step during which other programs used much CPU or
	// chatbench's sender stalled; its latency says little about the server.
	Disturbed bool `json:"disturbed,omitempty"`
}

// step sends at rate for warmup+duration, waits for the acks and
// deliveries (at most drain), and accounts for every message of the step.
func (f *fanoutRun) step(ctx context.Context, rate float64, warmup, duration time.Duration) stepResult {
	r := f.r
	o := r.o
	res := stepResult{Rate: rate}
	startSeq := make([]int, len(f.states))
	for i, m := range f.states {
		m.mu.Lock()
		startSeq[i] = len(m.sent)
		m.mu.Unlock()
	}
	now := int64(time.Since(r.base))
	w := &window{start: now, measure: now + int64(warmup)}
	w.until.Store(math.MaxInt64)
	f.win.Store(w)
	before := r.stats.read(ctx)
	redisBefore := r.redis.read(ctx)
	deliveredBefore := f.delivered.Load()
	dupBefore, unexpBefore := f.duplicates.Load(), f.unexpected.Load()

	total := int64(math.Round(rate * (warmup + duration).Seconds()))
	interval := float64(time.Second) / rate
	stop := every(time.Second, func() {
		s := w.lat.summary()
		r.logf("rate %.0f/s: sent %d/%d, acked %d, failed %d, delivered %d, p50 %.1fms p99 %.1fms, max this second %.1fms",
			rate, w.sent.Load(), total, w.acked.Load(), w.ackFailed.Load(), w.delivered.Load(), s.P50, s.P99,
			float64(w.latMax.Swap(0))/1e6)
	})
	var buf []byte
	var lagMax int64
	var sendErr error
	start := time.Now()
	for n := int64(0); n < total && ctx.Err() == nil; {
		due := time.Duration(float64(n) * interval)
		el := time.Since(start)
		if el < due {
			time.Sleep(due - el)
			continue
		}
		lagMax = max(lagMax, int64(el-due))
		// Message n: consecutive messages go to consecutive rooms, and
		// each room's members take turns.
		i := int(n%int64(f.rooms))*f.members + int(n/int64(f.rooms)%int64(f.members))
		var err error
		if buf, err = f.states[i].send(f.clients[i], buf); err != nil && sendErr == nil {
			sendErr = fmt.Errorf("send on connection %d: %w", i, err)
		}
		w.sent.Add(1)
		n++
	}
	sendTime := time.Since(start)
	w.until.Store(int64(time.Since(r.base)))
	res.DeliveriesPS = round(float64(f.delivered.Load()-deliveredBefore)/sendTime.Seconds(), 1)
	after := r.stats.read(ctx)

	// Wait for the acks and the deliveries they promise, at most o.drain.
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		sent, acked, failed := w.sent.Load(), w.acked.Load(), w.ackFailed.Load()
		if acked+failed >= sent && w.delivered.Load() >= acked*int64(f.members-1) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	res.Seconds = round(sendTime.Seconds(), 2)
	res.Sent = w.sent.Load()
	// Read after the drain: Redis's share of a message ends with its
	// last delivery.
	res.Redis = r.redis.usage(redisBefore, r.redis.read(ctx), res.Sent)
	res.SentRate = round(float64(res.Sent)/sendTime.Seconds(), 1)
	res.SendLagMaxMS = round(float64(lagMax)/1e6, 2)
	res.Latency = w.lat.summary()
	res.AckLatency = w.ack.summary()
	res.Server = between(before, after)
	if d := f.delivered.Load() - deliveredBefore; res.Server.CPUSeconds != nil && d > 0 {
		res.CPUPerDelivery = ptr(round(*res.Server.CPUSeconds*1e6/float64(d), 2))
	}
	f.account(startSeq, &res)
	res.Duplicates = f.duplicates.Load() - dupBefore
	res.Unexpected = f.unexpected.Load() - unexpBefore
	res.Dropped, _ = dropped(f.clients)
	if p := w.firstErr.Load(); p != nil {
		res.FirstError = *p
	} else if sendErr != nil {
		res.FirstError = sendErr.Error()
	} else if n, err := dropped(f.clients); n > 0 {
		res.FirstError = fmt.Sprintf("%d connections dropped: %v", n, err)
	}
	return res
}

// account compares every message sent since startSeq with what its room's
// other members received: each acked message must reach each of them
// exactly once.
func (f *fanoutRun) account(startSeq []int, res *stepResult) {
	for i, s := range f.states {
		s.mu.Lock()
		states := append([]uint8(nil), s.sent[startSeq[i]:]...)
		s.mu.Unlock()
		for _, st := range states {
			switch st {
			case sentOK:
				res.Acked++
			case sentFailed:
				res.AckFailed++
			default:
				res.Unacked++
			}
		}
		first := s.room * f.members
		for j := first; j < first+f.members; j++ {
			if j == i {
				continue
			}
			rcv := f.states[j]
			rcv.mu.Lock()
			counts := rcv.recv[s.pos]
			for k, st := range states {
				seq := startSeq[i] + k
				var n uint16
				if seq < len(counts) {
					n = counts[seq]
				}
				if st == sentOK {
					res.Expected++
					if n == 0 {
						res.Lost++
					}
				}
				res.Delivered += int64(n)
			}
			rcv.mu.Unlock()
		}
	}
}

// fanoutResult is the JSON result of a fanout run.
type fanoutResult struct {
	result
	Rooms       int `json:"rooms"`
	Members     int `json:"members"`
	Connections int `json:"connections"`
	TextBytes   int `json:"text_bytes"`
	stepResult
	AfterLoad afterLoad `json:"after_load"`
}

// afterLoad compares the servers before the connections were opened with
// the servers after they were closed: memory and goroutines should return
// to where they were. A field is absent when it could not be read.
type afterLoad struct {
	GoroutinesBaseline   *int64   `json:"goroutines_baseline,omitempty"`
	GoroutinesAfterClose *int64   `json:"goroutines_after_close,omitempty"`
	RSSBaselineMB        *float64 `json:"rss_baseline_mb,omitempty"`
	RSSLoadedMB          *float64 `json:"rss_loaded_mb,omitempty"`
	RSSAfterCloseMB      *float64 `json:"rss_after_close_mb,omitempty"`
	// The Go heap in use (chatd only): unlike RSS, it does not include
	// memory the runtime keeps for later.
	HeapBaselineMB   *float64 `json:"heap_baseline_mb,omitempty"`
	HeapLoadedMB     *float64 `json:"heap_loaded_mb,omitempty"`
	HeapAfterCloseMB *float64 `json:"heap_after_close_mb,omitempty"`
}

// settleAfterClose bounds the wait for the servers' goroutines to return to
// their baseline once the connections are closed.
const settleAfterClose = 15 * time.Second

// measureAfterClose closes the clients and reads the servers once their
// goroutines are back to the baseline (or settleAfterClose has passed), and
// -settle later.
func (r *runner) measureAfterClose(ctx context.Context, clients []*client, base, loaded sample) afterLoad {
	closeAll(clients)
	end := r.stats.read(ctx)
	deadline := time.Now().Add(settleAfterClose)
	for base.goroutines >= 0 && end.goroutines > base.goroutines+2 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		end = r.stats.read(ctx)
	}
	if r.o.settle > 0 {
		// Memory goes back to the system later than goroutines end, if at
		// all: chatd's idle reducer acts after two quiet seconds.
		r.logf("connections closed; settling for %v before memory is read", r.o.settle)
		select {
		case <-ctx.Done():
		case <-time.After(r.o.settle):
		}
		end = r.stats.read(ctx)
	}
	var a afterLoad
	if base.goroutines >= 0 && end.goroutines >= 0 {
		a.GoroutinesBaseline, a.GoroutinesAfterClose = ptr(base.goroutines), ptr(end.goroutines)
	}
	if base.rssKB >= 0 && loaded.rssKB >= 0 && end.rssKB >= 0 {
		a.RSSBaselineMB = ptr(round(float64(base.rssKB)/1024, 1))
		a.RSSLoadedMB = ptr(round(float64(loaded.rssKB)/1024, 1))
		a.RSSAfterCloseMB = ptr(round(float64(end.rssKB)/1024, 1))
	}
	if base.heapInuse >= 0 && loaded.heapInuse >= 0 && end.heapInuse >= 0 {
		a.HeapBaselineMB = ptr(round(float64(base.heapInuse)/(1<<20), 1))
		a.HeapLoadedMB = ptr(round(float64(loaded.heapInuse)/(1<<20), 1))
		a.HeapAfterCloseMB = ptr(round(float64(end.heapInuse)/(1<<20), 1))
	}
	return a
}

func (r *runner) fanout(ctx context.Context) (any, error) {
	cpu := newCPUMeter()
	o := r.o
	res := &fanoutResult{Rooms: o.rooms, Members: o.members, Connections: o.rooms * o.members, TextBytes: o.textBytes}
	r.logf("fanout: %d rooms x %d members over %d instance(s), %.0f messages/s for %v (+%v warmup)",
		o.rooms, o.members, len(o.targets), o.rate, o.duration, o.warmup)
	base := r.stats.read(ctx)
	f, err := r.newFanout(ctx)
	if err != nil {
		res.result = r.head(cpu)
		res.Error = errorText(err)
		return res, err
	}
	defer closeAll(f.clients)
	res.stepResult = f.step(ctx, o.rate, o.warmup, o.duration)
	res.Disturbed = disturbed(res.stepResult)
	res.AfterLoad = r.measureAfterClose(ctx, f.clients, base, r.stats.read(ctx))
	res.result = r.head(cpu)
	res.Error = errorText(ctx.Err())
	r.logf("fanout done: %d sent, %d delivered of %d expected, %d lost, %d duplicated, p50 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms%s",
		res.Sent, res.Delivered, res.Expected, res.Lost, res.Duplicates,
		res.Latency.P50, res.Latency.P99, res.Latency.P999, res.Latency.Max, noise(res.Server))
	if a := res.AfterLoad; a.GoroutinesBaseline != nil || a.RSSBaselineMB != nil {
		msg := "after the connections closed:"
		if a.GoroutinesBaseline != nil {
			msg += fmt.Sprintf(" goroutines %d (baseline %d)", *a.GoroutinesAfterClose, *a.GoroutinesBaseline)
		}
		if a.RSSBaselineMB != nil {
			msg += fmt.Sprintf(" RSS %.1f MB (baseline %.1f, loaded %.1f)", *a.RSSAfterCloseMB, *a.RSSBaselineMB, *a.RSSLoadedMB)
		}
		if a.HeapBaselineMB != nil {
			msg += fmt.Sprintf(" Go heap in use %.1f MB (baseline %.1f, loaded %.1f)", *a.HeapAfterCloseMB, *a.HeapBaselineMB, *a.HeapLoadedMB)
		}
		r.logf("%s", msg)
	}
	if res.Dropped > 0 && ctx.Err() == nil {
		err := lostError(dropped(f.clients))
		res.Error = err.Error()
		return res, err
	}
	return res, ctx.Err()
}

// noise describes the CPU that other programs used during a measurement.
func noise(u usage) string {
	if u.OtherCPUPercent == nil {
		return ""
	}
	return fmt.Sprintf(" (other programs used %.0f%% of a CPU meanwhile)", *u.OtherCPUPercent)
}
