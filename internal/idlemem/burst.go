package idlemem

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Connection bursts.
//
// Go never moves an object. A connection keeps a few hundred small objects
// for as long as it lives, and its handshake leaves more garbage than that
// behind, in the same size classes. When thousands of connections arrive at
// once (a deploy, a reconnect storm), the heap grows to its collection
// target (twice the live heap with GOGC=100) between collections, and the
// long-lived objects of the new connections end up spread over all of those
// pages, among the garbage. After the burst the garbage is freed, but hardly
// a page is wholly free, so none can be given back: at 10,000 idle
// connections the heap held 1.45 times its live bytes. Collecting more
// often while connections pile up keeps the heap closer to its live size,
// so the same connections fill fewer pages (1.2 times, 25.1 kB of resident
// memory per connection against 30 kB). Steady traffic does not pay for
// it: the lower target applies only while the number of open connections
// climbs fast, and only as far as the heap has grown. A storm that keeps
// the CPU busy does pay: each connection costs more collection work, and
// the benchmark's best connect rate fell from 3,818-4,773 to 3,054-3,818
// per second.

// BurstOptions tunes RunBurst.
type BurstOptions struct {
	// GCPercent is the lowest garbage collector target (GOGC) during a
	// burst. RunBurst does nothing when it is not above 0 or not below the
	// target in force when it starts (GOGC, 100 by default; off stays off).
	GCPercent int
	// Count returns the number of open connections. Required.
	Count func() int64
	// Interval is how often Count is read; 0 means 250 ms.
	Interval time.Duration
	// Rate is the growth of open connections, per second over the last
	// second, from which on a burst is under way; 0 means 200.
	Rate float64
	// Hold is how long the burst target stays after the growth last reached
	// Rate; 0 means one second.
	Hold time.Duration
	// Headroom is what the heap may grow by, beyond its live part, before
	// the next collection during a burst (within GCPercent and the target
	// RunBurst found); 0 means 64 MiB.
	Headroom uint64
	// OnBurst, if not nil, is told when a burst starts (true) and when it
	// ends (false).
	OnBurst func(start bool)

	// now and ticks replace the clock and the ticker of Interval in tests,
	// which then step time themselves; nil means the real ones.
	now   func() time.Time
	ticks <-chan time.Time
}

// burstWindow is the span over which the growth of open connections is
// measured.
const burstWindow = time.Second

type countSample struct {
	at time.Time
	n  int64
}

// burstDetector decides, one count at a time, when a burst starts and ends.
type burstDetector struct {
	o        BurstOptions
	recent   []countSample // oldest first; the first is at least burstWindow old once there is history
	active   bool
	lastHigh time.Time
}

func newBurstDetector(o BurstOptions) *burstDetector {
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Hold <= 0 {
		o.Hold = time.Second
	}
	if o.Headroom == 0 {
		o.Headroom = defaultHeadroom
	}
	return &burstDetector{o: o}
}

// next takes the count read at at and reports whether a burst started or
// ended with it.
func (d *burstDetector) next(at time.Time, n int64) (started, ended bool) {
	d.recent = append(d.recent, countSample{at, n})
	// Keep one sample at or beyond the window's start, to measure from.
	for len(d.recent) > 2 && at.Sub(d.recent[1].at) >= burstWindow {
		d.recent = d.recent[1:]
	}
	first := d.recent[0]
	elapsed := at.Sub(first.at).Seconds()
	high := elapsed > 0 && float64(n-first.n)/elapsed >= d.o.Rate
	switch {
	case high:
		d.lastHigh = at
		if !d.active {
			d.active = true
			return true, false
		}
	case d.active && at.Sub(d.lastHigh) >= d.o.Hold:
		d.active = false
		return false, true
	}
	return false, false
}

// GCPercent returns the garbage collector's target in force (GOGC); a
// negative value means the collector is off.
func GCPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt32 {
		return -1
	}
	return int(v)
}

// RunBurst watches o.Count until ctx ends. While open connections climb by
// o.Rate per second or more, it sets the garbage collector's target so that
// the heap grows by o.Headroom between collections, but not below
// o.GCPercent; when the climb stops, or ctx ends, it restores the target it
// found.
func RunBurst(ctx context.Context, o BurstOptions) {
	base := GCPercent()
	if o.Count == nil || o.GCPercent <= 0 || base < 0 || o.GCPercent >= base {
		return
	}
	d := newBurstDetector(o)
	set := base // the target last set
	now, ticks := o.now, o.ticks
	if now == nil {
		now = time.Now
	}
	if ticks == nil {
		t := time.NewTicker(d.o.Interval)
		defer t.Stop()
		ticks = t.C
	}
	defer func() {
		if set != base {
			debug.SetGCPercent(base)
		}
	}()
	d.next(now(), o.Count())
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		started, ended := d.next(now(), o.Count())
		switch {
		case ended:
			debug.SetGCPercent(base)
			set = base
		case d.active:
			if g := burstTarget(liveHeap(), d.o.Headroom, o.GCPercent, base); g != set {
				debug.SetGCPercent(g)
				set = g
			}
		}
		if (started || ended) && o.OnBurst != nil {
			o.OnBurst(started)
		}
	}
}

// defaultHeadroom is BurstOptions.Headroom's default. The headroom is a
// fixed amount rather than a share of the live heap: while the heap is
// small the pages it leaves scattered are few, and collecting often would
// cost much for little; as the connections pile up, its share falls towards
// the floor. 32 MiB packed 10,000 connections a little tighter (24.3 kB
// each) but cut the storm benchmark's connect rate by a third; 64 MiB
// costs about half of that.
const defaultHeadroom = 64 << 20

// burstTarget is the collector target during a burst for a live heap of
// live bytes: the share that headroom is of it, from floor to base.
func burstTarget(live, headroom uint64, floor, base int) int {
	if live == 0 {
		return base
	}
	g := int(min(uint64(max(base, 0)), 100*headroom/live)) //nolint:gosec // at most base, an int
	return max(g, floor)
}

// liveHeap returns the bytes the last collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
