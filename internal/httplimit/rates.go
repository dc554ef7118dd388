package httplimit

import (
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rates is a token bucket per client address, such as the handshakes an
// address may start per second. Addresses whose bucket is full again are
// forgotten, so the map holds only the addresses active lately.
type Rates struct {
	perSecond rate.Limit
	burst     int
	now       func() time.Time

	mu        sync.Mutex // guards the following fields
	addrs     map[string]*rate.Limiter
	lastSweep time.Time
}

// NewRates returns a [Rates] allowing burst at once per address and
// perSecond after that.
func NewRates(perSecond float64, burst int) *Rates {
	return &Rates{perSecond: rate.Limit(perSecond), burst: max(1, burst), now: time.Now, addrs: make(map[string]*rate.Limiter)}
}

// Allow takes one token of addr and reports whether there was one.
func (r *Rates) Allow(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if len(r.addrs) >= maxFailureAddrs || now.Sub(r.lastSweep) > failureSweepEvery {
		r.lastSweep = now
		for a, lim := range r.addrs {
			if lim.TokensAt(now) >= float64(r.burst) {
				delete(r.addrs, a)
			}
		}
		if len(r.addrs) >= maxFailureAddrs {
			clear(r.addrs)
		}
	}
	lim := r.addrs[addr]
	if lim == nil {
		lim = rate.NewLimiter(r.perSecond, r.burst)
		r.addrs[addr] = lim
	}
	return lim.AllowN(now, 1)
}

// Len is the number of addresses remembered.
func (r *Rates) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.addrs)
}

// RetryAfter is the value of a Retry-After header for a wait: whole
// seconds, rounded up, at least 1.
func RetryAfter(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}
