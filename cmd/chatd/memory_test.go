package main

import (
	"testing"
	"time"
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
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := scrape(t, base)
			if r.value("chatd_idle_memory_releases_total") >= 1 {
				if r.value("chatd_idle_memory_released_bytes_total") <= 0 {
					t.Error("a release is counted, but no bytes released")
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no release within 15 s of a busy spell followed by quiet")
			}
			// Not faster: a scrape allocates several hundred kB, and the
			// reducer needs the process quiet (below 4 MiB/s).
			time.Sleep(time.Second)
		}
	})
	t.Run("off", func(t *testing.T) {
		cfg := testConfig("idle-memory-off")
		cfg.Memory.ReleaseWhenIdle = false
		_, base := startMain(t, cfg)
		busySpell()
		time.Sleep(4 * time.Second) // twice what an enabled reducer needs
		if r := scrape(t, base); r.value("chatd_idle_memory_releases_total") != 0 {
			t.Fatal("memory released with memory.release_when_idle off")
		}
	})
}
