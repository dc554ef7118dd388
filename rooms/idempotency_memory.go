package rooms

import (
	"context"
	"sync"
	"time"
)

var _ Idempotency = (*MemoryIdempotency)(nil)

// MemoryIdempotency is the single-instance [Idempotency]. Entries are kept
// for ttl after they were completed, and at most maxEntries of them: past
// that the oldest go first, so that no client can grow it without bound.
type MemoryIdempotency struct {
	ttl        time.Duration
	maxEntries int
	maxPerUser int // 0: DefaultMemoryIdempotencyPerUser
	now        func() time.Time

	mu      sync.Mutex // guards the following fields
	entries map[string]*memoryIdempotencyEntry
	order   []string // keys in the order they were written; may hold stale keys
	// perUser counts the entries of each user; see idempotency_peruser.go.
	perUser perUserCount
}

type memoryIdempotencyEntry struct {
	msg     *Message // nil while the send is in progress
	expires time.Time
}

// pendingClaimTTL bounds how long a claim whose holder vanished blocks the
// key, in time.
const pendingClaimTTL = 30 * time.Second

// DefaultMemoryIdempotencyEntries is how many sends a [MemoryIdempotency]
// remembers at most (about 200 bytes each, texts are not kept).
const DefaultMemoryIdempotencyEntries = 100_000

// NewMemoryIdempotency returns a [MemoryIdempotency] remembering sends for
// ttl, at most [DefaultMemoryIdempotencyEntries] of them.
func NewMemoryIdempotency(ttl time.Duration) *MemoryIdempotency {
	return &MemoryIdempotency{
		ttl:        ttl,
		maxEntries: DefaultMemoryIdempotencyEntries,
		now:        time.Now,
		entries:    make(map[string]*memoryIdempotencyEntry),
	}
}

// Claim implements [Idempotency].
func (s *MemoryIdempotency) Claim(_ context.Context, key string) (*Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e := s.entries[key]; e != nil && now.Before(e.expires) {
		if e.msg != nil {
			m := *e.msg
			return &m, false, nil
		}
		return nil, false, nil
	}
	s.put(key, &memoryIdempotencyEntry{expires: now.Add(pendingClaimTTL)}, now)
	return nil, true, nil
}

// Complete implements [Idempotency].
func (s *MemoryIdempotency) Complete(_ context.Context, key string, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.put(key, &memoryIdempotencyEntry{msg: &m, expires: now.Add(s.ttl)}, now)
	return nil
}

// Release implements [Idempotency].
func (s *MemoryIdempotency) Release(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil && e.msg == nil {
		delete(s.entries, key)
		s.perUser.add(key, -1)
	}
	return nil
}

// put stores e under key and drops what has expired or is over the limit,
// oldest first.
func (s *MemoryIdempotency) put(key string, e *memoryIdempotencyEntry, now time.Time) {
	if _, ok := s.entries[key]; !ok {
		s.order = append(s.order, key)
		s.perUser.add(key, 1)
	}
	s.entries[key] = e
	s.boundUser(key)
	drop := 0
	for drop < len(s.order) {
		k := s.order[drop]
		old, ok := s.entries[k]
		switch {
		case !ok:
			// released or replaced earlier: a stale position
		case len(s.entries) > s.maxEntries || !now.Before(old.expires):
			delete(s.entries, k)
			s.perUser.add(k, -1)
		default:
			s.compact(drop)
			return
		}
		drop++
	}
	s.compact(drop)
}

// compact forgets the first n positions of order, reallocating once they
// are most of it.
func (s *MemoryIdempotency) compact(n int) {
	s.order = s.order[n:]
	if cap(s.order) > 64 && len(s.order) < cap(s.order)/4 {
		s.order = append([]string(nil), s.order...)
	}
}
