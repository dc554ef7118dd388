package main

// The soak scenario: a steady stream of short-lived users that connect,
// join a room, write one message, leave and disconnect, watched by one
// resident member per room, for minutes. It shows whether anything the
// server keeps per user, socket or message (memory, goroutines, Redis keys)
// grows with the number of users that came and went, rather than with the
// number that are there.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// soakInFlight bounds the cycles running at once; a server that cannot
// keep up makes the soak fall behind its rate (reported), not pile up.
const soakInFlight = 256

// soakSample is one periodic reading of the servers and of Redis.
type soakSample struct {
	Seconds    float64  `json:"t_s"`
	Cycles     int64    `json:"cycles"`
	RSSMB      *float64 `json:"rss_mb,omitempty"`
	HeapMB     *float64 `json:"heap_mb,omitempty"`
	Goroutines *int64   `json:"goroutines,omitempty"`
	RedisMB    *float64 `json:"redis_mb,omitempty"`
	RedisKeys  *int64   `json:"redis_keys,omitempty"`
}

// soakGrowth compares the first and the last third of the samples taken
// after the warm-up, by their medians.
type soakGrowth struct {
	Metric string  `json:"metric"`
	First  float64 `json:"first"`
	Last   float64 `json:"last"`
	Slack  float64 `json:"slack"`
	Flat   bool    `json:"flat"`
}

// soakResult is the JSON result of a soak run.
type soakResult struct {
	result
	Rooms        int          `json:"rooms"`
	Rate         float64      `json:"rate"`
	Seconds      float64      `json:"seconds"`
	Cycles       int64        `json:"cycles"`
	CycleErrors  int64        `json:"cycle_errors"`
	FirstError   string       `json:"first_error,omitempty"`
	Behind       int64        `json:"behind"`
	Delivered    int64        `json:"delivered"`
	Lost         int64        `json:"lost"`
	Duplicates   int64        `json:"duplicates"`
	Dropped      int          `json:"dropped_connections"`
	Samples      []soakSample `json:"samples"`
	Growth       []soakGrowth `json:"growth"`
	Flat         bool         `json:"flat"`
	AfterClose   afterLoad    `json:"after_close"`
	RedisSkipped bool         `json:"redis_skipped,omitempty"`
}

// soakRun is the state of one soak.
type soakRun struct {
	r     *runner
	mu    sync.Mutex // guards seen
	seen  []uint8    // deliveries to the room's resident, by cycle
	acked []atomic.Bool
}

// prefixSoak starts the text of every soak message: "soak:<cycle>:".
var prefixSoak = []byte(`"text":"soak:`)

// onResident accounts for a message seen by a room's resident member.
func (s *soakRun) onResident(_ *client, b []byte, _ int64) {
	if !bytes.HasPrefix(b, prefixMessage) {
		return
	}
	i := bytes.Index(b, prefixSoak)
	if i < 0 {
		return
	}
	n, _, ok := parseUint(b[i+len(prefixSoak):])
	if !ok {
		return
	}
	s.mu.Lock()
	if n < uint64(len(s.seen)) && s.seen[n] < 255 {
		s.seen[n]++
	}
	s.mu.Unlock()
}

// cycle is one short-lived user: connect, join, write, leave, disconnect.
func (s *soakRun) cycle(ctx context.Context, i int, room string) error {
	r := s.r
	c, err := dial(ctx, dialOptions{
		target: r.o.targets[i%len(r.o.targets)],
		userID: fmt.Sprintf("bench-%s-c%d", r.runID, i),
		base:   r.base,
		dialer: r.dialer,
	})
	if err != nil {
		return fmt.Errorf("cycle %d: connect: %w", i, err)
	}
	defer c.close()
	if _, err := c.request(ctx, "join", map[string]string{"room": room}); err != nil {
		return fmt.Errorf("cycle %d: %w", i, err)
	}
	if _, err := c.request(ctx, "message", map[string]string{"room": room, "text": "soak:" + strconv.Itoa(i) + ":"}); err != nil {
		return fmt.Errorf("cycle %d: %w", i, err)
	}
	s.acked[i].Store(true)
	if _, err := c.request(ctx, "leave", map[string]string{"room": room}); err != nil {
		return fmt.Errorf("cycle %d: %w", i, err)
	}
	return nil
}

// redisStats reads Redis's used memory (MB) and key count, or reports
// that it could not.
func redisStats(ctx context.Context, rdb *goredis.Client) (mb float64, keys int64, ok bool) {
	if rdb == nil {
		return 0, 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, 0, false
	}
	used, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	keys, err = rdb.DBSize(ctx).Result()
	if err != nil {
		return 0, 0, false
	}
	return round(float64(used)/(1<<20), 2), keys, true
}

// soak runs the soak scenario.
func (r *runner) soak(ctx context.Context) (any, error) {
	cpu := newCPUMeter()
	o := r.o
	total := int(o.rate*o.duration.Seconds()) + 1
	s := &soakRun{r: r, seen: make([]uint8, total), acked: make([]atomic.Bool, total)}
	res := &soakResult{Rooms: o.rooms, Rate: o.rate}
	r.logf("soak: %d rooms over %d instance(s), %.0f users/s for %v, samples every %v (the first %v are warm-up)",
		o.rooms, len(o.targets), o.rate, o.duration, o.report, o.warmup)
	var rdb *goredis.Client
	if o.redis != "" {
		rdb = goredis.NewClient(&goredis.Options{Addr: o.redis, DisableIdentity: true})
		defer func() {
			if rdb != nil {
				_ = rdb.Close()
			}
		}()
		if _, _, ok := redisStats(ctx, rdb); !ok {
			r.logf("no Redis INFO at %s; Redis memory is not reported", o.redis)
			_ = rdb.Close()
			rdb = nil
		}
	}
	res.RedisSkipped = rdb == nil
	base := r.stats.read(ctx)

	roomName := func(k int) string { return fmt.Sprintf("bench-%s-r%d", r.runID, k) }
	residents, err := r.connectAll(ctx, o.rooms, s.onResident, nil, roomName)
	if err != nil {
		res.result = r.head(cpu)
		res.Error = errorText(err)
		return res, err
	}
	defer closeAll(residents)

	start := time.Now()
	var cycles, failed, behind atomic.Int64
	var firstErr atomic.Pointer[string]
	sample := func() {
		st := r.stats.read(ctx)
		smp := soakSample{Seconds: round(time.Since(start).Seconds(), 1), Cycles: cycles.Load()}
		if st.rssKB >= 0 {
			smp.RSSMB = ptr(round(float64(st.rssKB)/1024, 1))
		}
		if st.heapInuse >= 0 {
			smp.HeapMB = ptr(round(float64(st.heapInuse)/(1<<20), 1))
		}
		if st.goroutines >= 0 {
			smp.Goroutines = ptr(st.goroutines)
		}
		if mb, keys, ok := redisStats(ctx, rdb); ok {
			smp.RedisMB, smp.RedisKeys = ptr(mb), ptr(keys)
		}
		res.Samples = append(res.Samples, smp)
		r.logf("soak: %s", describeSample(smp, failed.Load(), behind.Load()))
	}
	sample()
	stopSampling := every(o.report, sample)

	sem := make(chan struct{}, soakInFlight)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
	deadline := time.After(o.duration)
send:
	for i := 0; i < total; i++ {
		select {
		case <-ctx.Done():
			break send
		case <-deadline:
			break send
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			behind.Add(1)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break send
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.cycle(ctx, i, roomName(i%o.rooms)); err != nil {
				failed.Add(1)
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
			}
			cycles.Add(1)
		}()
	}
	tick.Stop()
	wg.Wait()
	res.Seconds = round(time.Since(start).Seconds(), 1)

	// Deliveries to the residents may trail the last ack a little.
	count := func() (delivered, lost, dups int64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := range s.seen {
			switch n := s.seen[i]; {
			case n == 0 && s.acked[i].Load():
				lost++
			case n > 0:
				delivered++
				if n > 1 {
					dups += int64(n - 1)
				}
			}
		}
		return delivered, lost, dups
	}
	for wait := time.Now().Add(o.drain); ; time.Sleep(100 * time.Millisecond) {
		if _, lost, _ := count(); lost == 0 || time.Now().After(wait) || ctx.Err() != nil {
			break
		}
	}
	stopSampling()
	sample()
	res.Delivered, res.Lost, res.Duplicates = count()
	res.Cycles, res.CycleErrors, res.Behind = cycles.Load(), failed.Load(), behind.Load()
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	res.Growth, res.Flat = soakFlat(res.Samples, o.warmup)
	var derr error
	res.Dropped, derr = dropped(residents)
	res.AfterClose = r.measureAfterClose(ctx, residents, base, r.stats.read(ctx))
	res.result = r.head(cpu)

	r.logf("soak done: %d users in %.0f s, %d failed, %d behind the rate; %d delivered, %d lost, %d duplicated; flat: %v",
		res.Cycles, res.Seconds, res.CycleErrors, res.Behind, res.Delivered, res.Lost, res.Duplicates, res.Flat)
	for _, g := range res.Growth {
		r.logf("  %-10s %8.1f -> %8.1f (slack %.1f) %s", g.Metric, g.First, g.Last, g.Slack, map[bool]string{true: "flat", false: "GREW"}[g.Flat])
	}
	var failure error
	switch {
	case ctx.Err() != nil:
		failure = ctx.Err()
	case res.Dropped > 0:
		failure = lostError(res.Dropped, derr)
	case res.CycleErrors > 0:
		failure = fmt.Errorf("failed run: %d of %d users failed (first: %s)", res.CycleErrors, res.Cycles, res.FirstError)
	case res.Lost > 0 || res.Duplicates > 0:
		failure = fmt.Errorf("failed run: %d messages lost, %d duplicated", res.Lost, res.Duplicates)
	case !res.Flat:
		failure = errSoakGrew
	}
	res.Error = errorText(failure)
	return res, failure
}

// errSoakGrew fails a soak whose memory, goroutines or Redis use kept
// growing after the warm-up.
var errSoakGrew = errors.New("failed run: resource use grew during the soak")

// soakSlack is the absolute growth of each metric that still counts as
// flat, beside 5 % of its first value: allocators and Redis's own
// bookkeeping move a little without a leak.
var soakSlack = map[string]float64{"rss_mb": 4, "heap_mb": 2, "goroutines": 5, "redis_mb": 1, "redis_keys": 20}

// soakFlat compares, for every metric it has, the median of the first
// third of the samples taken after warmup with the median of the last
// third.
func soakFlat(samples []soakSample, warmup time.Duration) ([]soakGrowth, bool) {
	var after []soakSample
	for _, s := range samples {
		if s.Seconds >= warmup.Seconds() {
			after = append(after, s)
		}
	}
	if len(after) < 3 {
		return nil, true
	}
	third := len(after) / 3
	metrics := []struct {
		name string
		get  func(soakSample) (float64, bool)
	}{
		{"rss_mb", func(s soakSample) (float64, bool) { return deref(s.RSSMB) }},
		{"heap_mb", func(s soakSample) (float64, bool) { return deref(s.HeapMB) }},
		{"goroutines", func(s soakSample) (float64, bool) {
			if s.Goroutines == nil {
				return 0, false
			}
			return float64(*s.Goroutines), true
		}},
		{"redis_mb", func(s soakSample) (float64, bool) { return deref(s.RedisMB) }},
		{"redis_keys", func(s soakSample) (float64, bool) {
			if s.RedisKeys == nil {
				return 0, false
			}
			return float64(*s.RedisKeys), true
		}},
	}
	var out []soakGrowth
	flat := true
	for _, m := range metrics {
		first, ok1 := medianOf(after[:third], m.get)
		last, ok2 := medianOf(after[len(after)-third:], m.get)
		if !ok1 || !ok2 {
			continue
		}
		slack := soakSlack[m.name] + 0.05*first
		g := soakGrowth{Metric: m.name, First: first, Last: last, Slack: round(slack, 1), Flat: last-first <= slack}
		flat = flat && g.Flat
		out = append(out, g)
	}
	return out, flat
}

func deref(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

// medianOf is the median of get over samples, false when a sample lacks it.
func medianOf(samples []soakSample, get func(soakSample) (float64, bool)) (float64, bool) {
	var v []float64
	for _, s := range samples {
		x, ok := get(s)
		if !ok {
			return 0, false
		}
		v = append(v, x)
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	return v[len(v)/2], true
}

// describeSample is one progress line of the soak.
func describeSample(s soakSample, failed, behind int64) string {
	msg := fmt.Sprintf("%4.0fs %6d users", s.Seconds, s.Cycles)
	if s.RSSMB != nil {
		msg += fmt.Sprintf("  RSS %6.1f MB", *s.RSSMB)
	}
	if s.HeapMB != nil {
		msg += fmt.Sprintf("  heap %5.1f MB", *s.HeapMB)
	}
	if s.Goroutines != nil {
		msg += fmt.Sprintf("  goroutines %4d", *s.Goroutines)
	}
	if s.RedisMB != nil {
		msg += fmt.Sprintf("  Redis %5.2f MB, %d keys", *s.RedisMB, *s.RedisKeys)
	}
	if failed > 0 || behind > 0 {
		msg += fmt.Sprintf("  (%d failed, %d behind)", failed, behind)
	}
	return msg
}

// checkLoopbackAddr refuses a host:port that is not on this machine.
func checkLoopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: only loopback hosts may be read", addr)
	}
	return nil
}
