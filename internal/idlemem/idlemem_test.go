package idlemem

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

// at is the sample taken sec seconds after the reducer started.
func at(sec float64, allocatedMiB, heldMiB uint64) Sample {
	return Sample{At: t0.Add(time.Duration(sec * float64(time.Second))), Allocated: allocatedMiB * mib, Held: heldMiB * mib}
}

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func TestReducerReleasesOnlyAfterQuietSamplesAndMuchAllocated(t *testing.T) {
	r := newReducer(Options{Interval: time.Second, MinGap: time.Second}, at(0, 0, 0))
	steps := []struct {
		name string
		s    Sample
		want bool
	}{
		{"busy", at(1, 100, 150), false},
		{"first quiet interval", at(2, 101, 150), false},
		{"second quiet interval", at(3, 102, 150), true},
	}
	for _, st := range steps {
		if got := r.next(st.s); got != st.want {
			t.Fatalf("%s: release = %v, want %v", st.name, got, st.want)
		}
	}
	r.released(at(3, 102, 60))
	steps = []struct {
		name string
		s    Sample
		want bool
	}{
		{"quiet, nothing allocated since the release", at(4, 103, 60), false},
		{"quiet, little allocated", at(5, 104, 60), false},
		{"busy again", at(6, 200, 120), false},
		{"one quiet interval is not enough", at(7, 201, 120), false},
		{"two are", at(8, 202, 120), true},
	}
	for _, st := range steps {
		if got := r.next(st.s); got != st.want {
			t.Fatalf("%s: release = %v, want %v", st.name, got, st.want)
		}
	}
}

func TestReducerLeavesAMinuteBetweenReleases(t *testing.T) {
	r := newReducer(Options{Interval: time.Second}, at(0, 0, 0))
	r.released(at(0, 0, 100))
	// Steady light traffic, 3 MiB/s: quiet, and a quarter of the memory
	// held is allocated every 9 s, but the next release waits a minute.
	for sec := 1; sec <= 70; sec++ {
		s := at(float64(sec), uint64(3*sec), 100)
		got := r.next(s)
		if got != (sec == 60) {
			t.Fatalf("second %d: release = %v; want the next release at 60 s", sec, got)
		}
		if got {
			r.released(s)
		}
	}
}

func TestReducerWaitsForAllocationsOfAQuarterOfTheMemoryHeld(t *testing.T) {
	r := newReducer(Options{Interval: time.Second}, at(0, 0, 0))
	// Pings of idle sockets: 1 MiB/s is quiet, but the allocations reach a
	// quarter of the 200 MiB held only at the 50th second.
	for sec := 1; sec <= 60; sec++ {
		s := at(float64(sec), uint64(sec), 200)
		got := r.next(s)
		if got != (sec == 50) {
			t.Fatalf("second %d: release = %v after %d MiB allocated with 200 MiB held; want one release, at 50 MiB", sec, got, sec)
		}
		if got {
			r.released(s)
		}
	}
}

func TestReducerIgnoresASmallHeap(t *testing.T) {
	r := newReducer(Options{Interval: time.Second}, at(0, 0, 0))
	for sec := 1; sec <= 5; sec++ {
		// Much allocated for the memory held, but below MinAllocated.
		if r.next(at(float64(sec), 10, 12)) {
			t.Fatalf("second %d: released after 10 MiB, below the 16 MiB minimum", sec)
		}
	}
}

func TestReducerMeasuresTheRateOverTheTimeThatPassed(t *testing.T) {
	// 4 MiB/s is the quiet limit. 2 MiB in 250 ms is 8 MiB/s, busy; 2 MiB
	// in a second that a late tick made of a 250 ms interval is quiet.
	r := newReducer(Options{Interval: 250 * time.Millisecond}, at(0, 0, 0))
	for i := 1; i <= 20; i++ {
		if r.next(at(float64(i)*0.25, uint64(2*i), 100)) {
			t.Fatalf("sample %d: released while allocating 8 MiB/s", i)
		}
	}
	r = newReducer(Options{Interval: 250 * time.Millisecond}, at(0, 0, 0))
	released := false
	for i := 1; i <= 60; i++ {
		released = released || r.next(at(float64(i), uint64(2*i), 100))
	}
	if !released {
		t.Fatal("no release while allocating 2 MiB/s with ticks a second apart")
	}
}

// garbage is kept reachable from a package variable so that the compiler
// cannot drop the allocations.
var garbage [][]byte

func TestRunGivesTheGarbageOfABurstBackToTheSystem(t *testing.T) {
	type release struct{ before, after uint64 }
	got := make(chan release, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	// The first sample is taken before the burst, so that the burst counts
	// however late the goroutine starts.
	first := Read()
	go func() {
		defer close(done)
		run(ctx, Options{Interval: 50 * time.Millisecond, OnRelease: func(before, after uint64, _ time.Duration) {
			select {
			case got <- release{before, after}:
			default:
			}
		}}, first)
	}()

	// A burst: 96 MiB allocated and dropped without a collection after it.
	// The collector stays off, as it would in an idle server whose heap is
	// below its goal, so only a release can give the memory back.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for range 96 {
		b := make([]byte, mib)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page, so that it is resident
		}
		garbage = append(garbage, b)
	}
	garbage = nil

	select {
	case r := <-got:
		if r.before < r.after+64*mib {
			t.Fatalf("release went from %d MiB held to %d MiB; want at least 64 MiB less", r.before/mib, r.after/mib)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no release within 10 s of a quiet process with 96 MiB of garbage (now %+v)", Read())
	}
	cancel()
	<-done
}

func TestReadReportsTheHeap(t *testing.T) {
	s := Read()
	if s.Allocated == 0 || s.Held == 0 {
		t.Fatalf("Read() = %+v; want allocated and held bytes", s)
	}
}
