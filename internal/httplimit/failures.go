package httplimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failures throttles failed authentication per client address: each
// failure spends one of an address's Burst tokens, which come back at
// PerSecond; an address without a token left is refused before its
// credentials are even looked at, so guessing a token costs a guesser time.
// Addresses whose budget is full again are forgotten.
type Failures struct {
	perSecond rate.Limit
	burst     int
	now       func() time.Time

	mu        sync.Mutex // guards the following fields
	addrs     map[string]*rate.Limiter
	lastSweep time.Time
}

// Default bounds of [Failures]: 10 failures at once, then one every 2 s.
const (
	DefaultFailuresPerSecond = 0.5
	DefaultFailureBurst      = 10
	// maxFailureAddrs bounds the addresses remembered; past it, the
	// addresses whose budget is full again are swept at once.
	maxFailureAddrs = 100_000
	// failureSweepEvery is how often a failure sweeps the addresses whose
	// budget is full again.
	failureSweepEvery = time.Minute
)

// NewFailures returns a [Failures] allowing burst failures per address at
// once and perSecond after that; zero values get the defaults.
func NewFailures(perSecond float64, burst int) *Failures {
	if perSecond <= 0 {
		perSecond = DefaultFailuresPerSecond
	}
	if burst <= 0 {
		burst = DefaultFailureBurst
	}
	return &Failures{perSecond: rate.Limit(perSecond), burst: burst, now: time.Now, addrs: make(map[string]*rate.Limiter)}
}

// Blocked reports whether addr has no failure left to spend, and how long
// until it has one again.
func (f *Failures) Blocked(addr string) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim := f.addrs[addr]
	if lim == nil {
		return 0, false
	}
	now := f.now()
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration(math.Ceil((1 - tokens) / float64(f.perSecond) * float64(time.Second)))
	return wait, true
}

// Fail spends one failure of addr.
func (f *Failures) Fail(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if len(f.addrs) >= maxFailureAddrs || now.Sub(f.lastSweep) > failureSweepEvery {
		f.sweep(now)
	}
	lim := f.addrs[addr]
	if lim == nil {
		lim = rate.NewLimiter(f.perSecond, f.burst)
		f.addrs[addr] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets the addresses whose budget is full again; when every one
// is still spending, it forgets them all rather than grow without bound.
func (f *Failures) sweep(now time.Time) {
	f.lastSweep = now
	for a, lim := range f.addrs {
		if lim.TokensAt(now) >= float64(f.burst) {
			delete(f.addrs, a)
		}
	}
	if len(f.addrs) >= maxFailureAddrs {
		clear(f.addrs)
	}
}

// Len is the number of addresses remembered.
func (f *Failures) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.addrs)
}
