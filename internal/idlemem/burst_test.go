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

// RunBurst lowers the collector's target while connections climb, and puts
// back the target it found once they stop and when it ends.
func TestRunBurstLowersAndRestoresTheCollectorTarget(t *testing.T) {
	base := debug.SetGCPercent(80)
	defer debug.SetGCPercent(base)
	runtime.GC() // the target follows the live heap that a collection measured
	var open atomic.Int64
	stop := climb(&open)
	defer func() { stop() }()
	events := make(chan bool, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunBurst(ctx, BurstOptions{
			GCPercent: 30, Count: open.Load,
			Interval: 20 * time.Millisecond, Hold: 100 * time.Millisecond,
			Headroom: 1, // any live heap is far above it: the floor applies
			OnBurst:  func(start bool) { events <- start },
		})
	}()
	waitEvent := func(want bool) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("burst start = %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no burst event (start %v) within 5 s", want)
		}
	}
	waitEvent(true)
	waitFor(t, "target 30 during the burst", func() bool { return GCPercent() == 30 })
	stop()
	waitEvent(false)
	if got := GCPercent(); got != 80 {
		t.Fatalf("target %d after the burst, want 80", got)
	}

	// A burst cut short by the end of RunBurst restores the target too.
	stop = climb(&open)
	waitEvent(true)
	waitFor(t, "target 30 during the second burst", func() bool { return GCPercent() == 30 })
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
		var open atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		go func() {
			for ctx.Err() == nil {
				open.Add(100)
				time.Sleep(5 * time.Millisecond)
			}
		}()
		RunBurst(ctx, BurstOptions{GCPercent: 30, Count: open.Load, Interval: 10 * time.Millisecond, Headroom: 1})
		cancel()
		if got := GCPercent(); got != gogc {
			t.Errorf("GOGC %d: target %d after a burst, want it unchanged", gogc, got)
		}
	}
}

// climb adds about 1,000 open connections per second to open until the
// returned function is called.
func climb(open *atomic.Int64) (stop func()) {
	var done atomic.Bool
	go func() {
		for !done.Load() {
			open.Add(10)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() { done.Store(true) }
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
