// Package idlemem gives the free memory of the Go heap back to the operating
// system when chatd goes quiet after a busy spell, as V8's memory reducer
// does for Node.
//
// Why: with GOGC=100 the Go runtime lets the heap grow to twice what is live
// before it collects, and its background scavenger only returns memory above
// that goal. A burst of connections (a deploy, a reconnect storm) leaves the
// garbage of thousands of handshakes behind, and when the server then idles
// nothing allocates enough to start the next collection: its resident memory
// stays near twice its live heap. The runtime forces a collection every two
// minutes, which frees the objects but keeps their pages. The reducer
// watches the allocation rate, and once it has stayed low for a few samples
// after the process allocated much, it collects and returns the free pages
// (debug.FreeOSMemory). Under load it does nothing: the rate is high.
//
// The heap's own statistics cannot tell how much of it is garbage before a
// collection has looked (the live size they report is that of the last
// collection, which may have run in the middle of the burst). So the
// reducer goes by what was allocated since its last release: once that is
// a good part of the memory held, most of it is garbage when the process
// has gone quiet.
package idlemem

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options tunes a reducer; the zero value is chatd's default.
type Options struct {
	// Interval is how often the heap is sampled; 0 means one second.
	Interval time.Duration
	// QuietSamples is how many intervals in a row must be quiet before
	// memory is released; 0 means 2.
	QuietSamples int
	// QuietBytesPerSecond is the allocation rate below which an interval is
	// quiet; 0 means 4 MiB/s. Idle sockets still allocate a little, for
	// their pings, and so does every scrape of the metrics.
	QuietBytesPerSecond uint64
	// MinGap is the least time between two releases; 0 means one minute.
	// Steady light traffic is quiet by QuietBytesPerSecond, and without a
	// gap the reducer would collect every time it had allocated a quarter
	// of the memory held.
	MinGap time.Duration
	// MinAllocated is the least allocated since the last release that is
	// worth another; 0 means 16 MiB. A release also needs allocations of at
	// least a quarter of the memory held, so that an idle server collects
	// only once in minutes for the little its pings allocate.
	MinAllocated uint64
	// OnRelease, if not nil, is told of every release: the memory the
	// runtime held from the operating system before and after it, in bytes,
	// and how long the release took.
	OnRelease func(before, after uint64, took time.Duration)
}

// Sample is what the reducer reads from the runtime at each interval.
type Sample struct {
	// At is when the sample was read.
	At time.Time
	// Allocated is the total of bytes ever allocated on the heap.
	Allocated uint64
	// Held is the memory the runtime holds from the operating system: all
	// it mapped, minus what it returned.
	Held uint64
}

var sampleNames = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
}

// Read samples the runtime.
func Read() Sample {
	ms := make([]metrics.Sample, len(sampleNames))
	for i, n := range sampleNames {
		ms[i].Name = n
	}
	metrics.Read(ms)
	v := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	return Sample{At: time.Now(), Allocated: v(0), Held: v(1) - v(2)}
}

// reducer decides, one sample at a time, when to release.
type reducer struct {
	o     Options
	prev  Sample
	quiet int
	// since is Allocated at the last release (or at the start).
	since uint64
	// releasedAt is when the last release was (zero: none yet).
	releasedAt time.Time
}

func newReducer(o Options, first Sample) *reducer {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.QuietSamples <= 0 {
		o.QuietSamples = 2
	}
	if o.QuietBytesPerSecond == 0 {
		o.QuietBytesPerSecond = 4 << 20
	}
	if o.MinGap <= 0 {
		o.MinGap = time.Minute
	}
	if o.MinAllocated == 0 {
		o.MinAllocated = 16 << 20
	}
	return &reducer{o: o, prev: first, since: first.Allocated}
}

// next takes the sample of the interval that just ended and reports whether
// to release now.
func (r *reducer) next(s Sample) bool {
	allocated := s.Allocated - r.prev.Allocated
	elapsed := s.At.Sub(r.prev.At)
	if elapsed <= 0 {
		elapsed = r.o.Interval
	}
	r.prev = s
	if float64(allocated) > float64(r.o.QuietBytesPerSecond)*elapsed.Seconds() {
		r.quiet = 0
		return false
	}
	r.quiet++
	if r.quiet < r.o.QuietSamples {
		return false
	}
	if !r.releasedAt.IsZero() && s.At.Sub(r.releasedAt) < r.o.MinGap {
		return false
	}
	churn := s.Allocated - r.since
	if churn < r.o.MinAllocated || churn < s.Held/4 {
		return false
	}
	r.quiet = 0
	return true
}

// released notes a release, after which s was read.
func (r *reducer) released(s Sample) {
	// What the release allocated itself is not the application's.
	r.prev = s
	r.since = s.Allocated
	r.releasedAt = s.At
}

// Run samples the heap every interval until ctx ends, and releases free
// memory to the operating system when the process has gone quiet after
// allocating much.
func Run(ctx context.Context, o Options) {
	run(ctx, o, Read())
}

// run is Run from a first sample taken by the caller.
func run(ctx context.Context, o Options, first Sample) {
	r := newReducer(o, first)
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.next(Read()) {
			continue
		}
		before := Read().Held
		start := time.Now()
		debug.FreeOSMemory()
		took := time.Since(start)
		after := Read()
		r.released(after)
		if o.OnRelease != nil {
			o.OnRelease(before, after.Held, took)
		}
	}
}
