package idlemem

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestBurstDetectorStartsOnFastGrowthAndEndsAfterHold(t *testing.T) {
	d := newBurstDetector(BurstOptions{Interval: 250 * time.Millisecond, Rate: 200, Hold: time.Second})
	steps := []struct {
		name           string
		sec            float64
		open           int64
		started, ended bool
	}{
		{"first count", 0, 1000, false, false},
		{"steady", 0.25, 1000, false, false},
		{"churn without growth", 0.5, 1010, false, false},
		{"slow growth, 85 in the last second", 1.25, 1085, false, false},
		{"fast growth, 525 in the last second", 1.5, 1535, true, false},
		{"still fast", 1.75, 1985, false, false},
		{"growth stops, but the last second was fast", 2.5, 1985, false, false},
		{"half a second of hold", 3.0, 1985, false, false},
		{"a second of hold", 3.5, 1985, false, true},
		{"a new burst", 3.75, 2500, true, false},
		{"connections leave, held", 4.0, 100, false, false},
		{"ends after hold", 5.0, 100, false, true},
		{"quiet stays quiet", 6.0, 100, false, false},
	}
	for _, st := range steps {
		started, ended := d.next(t0.Add(time.Duration(st.sec*float64(time.Second))), st.open)
		if started != st.started || ended != st.ended {
			t.Fatalf("%s (%.2fs, %d open): started, ended = %v, %v; want %v, %v",
				st.name, st.sec, st.open, started, ended, st.started, st.ended)
		}
	}
}

func TestBurstTargetFollowsTheLiveHeapWithinFloorAndBase(t *testing.T) {
	for _, tt := range []struct {
		liveMiB uint64
		want    int
	}{
		{0, 100},   // no collection yet
		{8, 100},   // 32 MiB is 400% of 8: capped at the base
		{32, 100},  // exactly the base
		{64, 50},   // half
		{128, 25},  // the floor
		{1024, 25}, // never below the floor
	} {
		if got := burstTarget(tt.liveMiB*mib, 32*mib, 25, 100); got != tt.want {
			t.Errorf("live %d MiB: target %d, want %d", tt.liveMiB, got, tt.want)
		}
	}
	if got := burstTarget(64*mib, 32*mib, 25, 40); got != 40 {
		t.Errorf("base 40: target %d, want 40 (never above the base)", got)
	}
}

// burstClock steps RunBurst's time: each tick moves the clock on by one
// interval and adds to the open connections, as a steady climb would.
type burstClock struct {
	t        *testing.T
	interval time.Duration
	elapsed  atomic.Int64 // nanoseconds since t0
	open     atomic.Int64
	ticks    chan time.Time
	events   chan bool // OnBurst's reports
}

func newBurstClock(t *testing.T, interval time.Duration) *burstClock {
	return &burstClock{t: t, interval: interval, ticks: make(chan time.Time), events: make(chan bool, 4)}
}

func (c *burstClock) now() time.Time { return t0.Add(time.Duration(c.elapsed.Load())) }

// options wires the clock into o.
func (c *burstClock) options(o BurstOptions) BurstOptions {
	o.Interval, o.Count, o.now, o.ticks = c.interval, c.open.Load, c.now, c.ticks
	o.OnBurst = func(start bool) { c.events <- start }
	return o
}

// tick adds grow connections, moves the clock on by one interval and lets
// RunBurst read the count; it returns once RunBurst took the tick.
func (c *burstClock) tick(grow int64) {
	c.open.Add(grow)
	c.elapsed.Add(int64(c.interval))
	select {
	case c.ticks <- time.Time{}:
	case <-time.After(5 * time.Second):
		c.t.Fatal("RunBurst stopped taking ticks")
	}
}

// tickUntil ticks, adding grow connections each time, until RunBurst
// reports a burst's start (want true) or end (false); it fails the test
// after ten seconds of the clock without one.
func (c *burstClock) tickUntil(want bool, grow int64) {
	c.t.Helper()
	for range int(10 * time.Second / c.interval) {
		// RunBurst reports a tick's event before it takes the next one.
		c.tick(grow)
		select {
		case got := <-c.events:
			if got != want {
				c.t.Fatalf("burst start = %v, want %v", got, want)
			}
			return
		default:
		}
	}
	c.t.Fatalf("no burst event (start %v) within 10 s of the clock", want)
}

// RunBurst lowers the collector's target while connections climb, and puts
// back the target it found once they stop and when it ends.
func TestRunBurstLowersAndRestoresTheCollectorTarget(t *testing.T) {
	base := debug.SetGCPercent(80)
	defer debug.SetGCPercent(base)
	runtime.GC() // the target follows the live heap that a collection measured
	clock := newBurstClock(t, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunBurst(ctx, clock.options(BurstOptions{
			GCPercent: 30,
			Hold:      100 * time.Millisecond,
			Headroom:  1, // any live heap is far above it: the floor applies
		}))
	}()
	const climb = 20 // connections per 20 ms tick: 1,000 per second
	clock.tickUntil(true, climb)
	if got := GCPercent(); got != 30 {
		t.Fatalf("target %d during the burst, want 30", got)
	}
	clock.tickUntil(false, 0)
	if got := GCPercent(); got != 80 {
		t.Fatalf("target %d after the burst, want 80", got)
	}

	// A burst cut short by the end of RunBurst restores the target too.
	clock.tickUntil(true, climb)
	if got := GCPercent(); got != 30 {
		t.Fatalf("target %d during the second burst, want 30", got)
	}
	cancel()
	<-done
	if got := GCPercent(); got != 80 {
		t.Fatalf("target %d after RunBurst ended, want 80", got)
	}
}

// RunBurst leaves alone a collector that is off or already collects more
// often than its floor.
func TestRunBurstLeavesALowerOrDisabledTargetAlone(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	for _, gogc := range []int{-1, 20} {
		debug.SetGCPercent(gogc)
		clock := newBurstClock(t, 10*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			// A climb of 10,000 per second while RunBurst takes ticks;
			// it should take none.
			defer cancel()
			for range 30 {
				clock.open.Add(100)
				clock.elapsed.Add(int64(clock.interval))
				select {
				case clock.ticks <- time.Time{}:
				case <-ctx.Done():
					return
				}
			}
		}()
		RunBurst(ctx, clock.options(BurstOptions{GCPercent: 30, Headroom: 1}))
		cancel()
		if got := GCPercent(); got != gogc {
			t.Errorf("GOGC %d: target %d after a burst, want it unchanged", gogc, got)
		}
	}
}
