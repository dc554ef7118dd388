package idlemem

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

func TestReducerReleasesOnlyAfterQuietSamplesAndMuchAllocated(t *testing.T) {
	r := newReducer(Options{Interval: time.Second}, Sample{})
	steps := []struct {
		name string
		s    Sample
		want bool
	}{
		{"busy", Sample{Allocated: 100 * mib, Held: 150 * mib}, false},
		{"first quiet interval", Sample{Allocated: 101 * mib, Held: 150 * mib}, false},
		{"second quiet interval", Sample{Allocated: 102 * mib, Held: 150 * mib}, true},
	}
	for _, st := range steps {
		if got := r.next(st.s); got != st.want {
			t.Fatalf("%s: release = %v, want %v", st.name, got, st.want)
		}
	}
	r.released(Sample{Allocated: 102 * mib, Held: 60 * mib})
	steps = []struct {
		name string
		s    Sample
		want bool
	}{
		{"quiet, nothing allocated since the release", Sample{Allocated: 103 * mib, Held: 60 * mib}, false},
		{"quiet, little allocated", Sample{Allocated: 104 * mib, Held: 60 * mib}, false},
		{"busy again", Sample{Allocated: 200 * mib, Held: 120 * mib}, false},
		{"one quiet interval is not enough", Sample{Allocated: 201 * mib, Held: 120 * mib}, false},
		{"two are", Sample{Allocated: 202 * mib, Held: 120 * mib}, true},
	}
	for _, st := range steps {
		if got := r.next(st.s); got != st.want {
			t.Fatalf("%s: release = %v, want %v", st.name, got, st.want)
		}
	}
}

func TestReducerWaitsForAllocationsOfAQuarterOfTheMemoryHeld(t *testing.T) {
	r := newReducer(Options{Interval: time.Second}, Sample{})
	// Pings of idle sockets: 1 MiB/s is quiet, but 30 MiB is not yet a
	// quarter of the 200 MiB held.
	// quarter of the 200 MiB held until the 50th second.
	for i := 1; i <= 60; i++ {
		s := Sample{Allocated: uint64(i) * mib, Held: 200 * mib}
		got := r.next(s)
		if got != (i == 50) {
			t.Fatalf("second %d: release = %v after %d MiB allocated with 200 MiB held; want one release, at 50 MiB", i, got, i)
		}
		if got {
			r.released(s)
		}
	}
}

func TestReducerIgnoresASmallHeap(t *testing.T) {
	r := newReducer(Options{Interval: time.Second}, Sample{})
	for i := range 5 {
		// Much allocated for the memory held, but below MinAllocated.
		if r.next(Sample{Allocated: 10*mib + uint64(i), Held: 12 * mib}) {
			t.Fatalf("sample %d: released after 10 MiB, below the 16 MiB minimum", i)
		}
	}
}

func TestReducerScalesTheQuietRateWithTheInterval(t *testing.T) {
	// 4 MiB/s over 250 ms is 1 MiB: 2 MiB per interval is busy.
	r := newReducer(Options{Interval: 250 * time.Millisecond}, Sample{})
	for i := 1; i <= 50; i++ {
		if r.next(Sample{Allocated: uint64(i) * 2 * mib, Held: 100 * mib}) {
			t.Fatalf("sample %d: released while allocating 8 MiB/s", i)
		}
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
	go func() {
		defer close(done)
		Run(ctx, Options{Interval: 50 * time.Millisecond, OnRelease: func(before, after uint64, _ time.Duration) {
			select {
			case got <- release{before, after}:
			default:
			}
		}})
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
