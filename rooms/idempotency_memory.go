package rooms

import (
	"context"
	"sync"
	"time"
)

var _ Idempotency = (*MemoryIdempotency)(nil)

// MemoryIdempotency is the single-instance [Idempotency]. Entries are kept
// for ttl after they were completed; expired ones are swept as new claims
// come in.
type MemoryIdempotency struct {
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex // guards the following fields
	entries   map[string]*memoryIdempotencyEntry
	lastSweep time.Time
}

type memoryIdempotencyEntry struct {
	msg     *Message // nil while the send is in progress
	expires time.Time
}

// pendingClaimTTL bounds how long a claim whose holder vanished blocks the
// key, in time.
const pendingClaimTTL = 30 * time.Second

// NewMemoryIdempotency returns a [MemoryIdempotency] remembering sends for
// ttl.
func NewMemoryIdempotency(ttl time.Duration) *MemoryIdempotency {
	return &MemoryIdempotency{ttl: ttl, now: time.Now, entries: make(map[string]*memoryIdempotencyEntry)}
}

// Claim implements [Idempotency].
func (s *MemoryIdempotency) Claim(_ context.Context, key string) (*Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	if e := s.entries[key]; e != nil && now.Before(e.expires) {
		if e.msg != nil {
			m := *e.msg
			return &m, false, nil
		}
		return nil, false, nil
	}
	s.entries[key] = &memoryIdempotencyEntry{expires: now.Add(pendingClaimTTL)}
	return nil, true, nil
}

// Complete implements [Idempotency].
func (s *MemoryIdempotency) Complete(_ context.Context, key string, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[key] = &memoryIdempotencyEntry{msg: &m, expires: s.now().Add(s.ttl)}
	return nil
}

// Release implements [Idempotency].
func (s *MemoryIdempotency) Release(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil && e.msg == nil {
		delete(s.entries, key)
	}
	return nil
}

// sweep drops expired entries at most once a minute.
func (s *MemoryIdempotency) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for k, e := range s.entries {
		if !now.Before(e.expires) {
			delete(s.entries, k)
		}
	}
}
