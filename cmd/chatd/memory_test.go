package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// garbage keeps the test's allocations from being optimised away.
var garbage []byte

// busySpell allocates and drops 64 MiB in chatd's process (the test's own),
// as a burst of connections would.
func busySpell() {
	for range 64 {
		garbage = make([]byte, 1<<20)
		for i := 0; i < len(garbage); i += 4096 {
			garbage[i] = 1
		}
	}
	garbage = nil
}

// With memory.release_when_idle chatd gives memory back once it goes quiet
// after a busy spell, and says so in its metrics; without it, it does not.
func TestIdleMemoryIsGivenBackAfterABusySpell(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		cfg := testConfig("idle-memory-on")
		_, base := startMain(t, cfg)
		busySpell()
		// Checked once a second, not faster: a scrape allocates several
		// hundred kB, and the reducer needs the process quiet (below 4 MiB/s).
		testkit.EventuallyEvery(t, 15*time.Second, time.Second, func() bool {
			return scrape(t, base).value("chatd_idle_memory_releases_total") >= 1
		}, "a release after a busy spell followed by quiet")
		if r := scrape(t, base); r.value("chatd_idle_memory_released_bytes_total") <= 0 {
			t.Error("a release is counted, but no bytes released")
		}
	})
	t.Run("off", func(t *testing.T) {
		cfg := testConfig("idle-memory-off")
		cfg.Memory.ReleaseWhenIdle = false
		_, base := startMain(t, cfg)
		busySpell()
		// That nothing is released is the test: wait twice what an enabled
		// reducer needs, then look.
		time.Sleep(4 * time.Second)
		if r := scrape(t, base); r.value("chatd_idle_memory_releases_total") != 0 {
			t.Fatal("memory released with memory.release_when_idle off")
		}
	})
}

// dialMany opens n sockets over 8 connections at a time, as fast as the
// server accepts them.
func dialMany(t *testing.T, base string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				// The socket stays open until the test ends.
				if _, err := tryDial(t, base, fmt.Sprintf("burst-%d", i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// With memory.burst_gc_percent chatd notices connections arriving in a
// burst and says so in its metrics; with 0, it does not watch.
func TestConnectionBurstIsNoticed(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		cfg := testConfig("burst-on")
		cfg.Memory.ReleaseWhenIdle = false
		cfg.Shutdown.Drain = 0
		noAddressLimits(&cfg)
		_, base := startMain(t, cfg)
		start := time.Now()
		dialMany(t, base, 600)
		took := time.Since(start)
		if rate := 600 / took.Seconds(); rate < 400 {
			t.Skipf("600 sockets took %v (%.0f/s); too slow to be a burst of 200/s on this machine", took, rate)
		}
		waitValue(t, base, 1, "chatd_connection_bursts_total")
	})
	t.Run("off", func(t *testing.T) {
		cfg := testConfig("burst-off")
		cfg.Memory.ReleaseWhenIdle = false
		cfg.Memory.BurstGCPercent = 0
		cfg.Shutdown.Drain = 0
		noAddressLimits(&cfg)
		_, base := startMain(t, cfg)
		dialMany(t, base, 600)
		// That no burst is counted is the test: wait two samples of an
		// enabled watcher, then look.
		time.Sleep(500 * time.Millisecond)
		if r := scrape(t, base); r.value("chatd_connection_bursts_total") != 0 {
			t.Fatal("burst counted with memory.burst_gc_percent 0")
		}
	})
}
