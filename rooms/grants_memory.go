package rooms

import (
	"context"
	"sync"
	"time"
)

// MemoryGrants is the in-memory [Grants] of a single instance.
type MemoryGrants struct {
	mu      sync.Mutex                      // guards the following fields
	grants  map[string]map[string]bool      // user id -> rooms granted
	revoked map[string]map[string]time.Time // user id -> room -> last revoke
}

var _ Grants = (*MemoryGrants)(nil)

// NewMemoryGrants returns an empty MemoryGrants.
func NewMemoryGrants() *MemoryGrants {
	return &MemoryGrants{grants: make(map[string]map[string]bool), revoked: make(map[string]map[string]time.Time)}
}

// Grant implements [Grants].
func (g *MemoryGrants) Grant(_ context.Context, userID, room string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.grants[userID]
	if rs == nil {
		rs = make(map[string]bool)
		g.grants[userID] = rs
	}
	rs[room] = true
	if rv := g.revoked[userID]; rv != nil {
		delete(rv, room)
		if len(rv) == 0 {
			delete(g.revoked, userID)
		}
	}
	return nil
}

// Revoke implements [Grants].
func (g *MemoryGrants) Revoke(_ context.Context, userID, room string, at time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	rv := g.revoked[userID]
	if rv == nil {
		rv = make(map[string]time.Time)
		g.revoked[userID] = rv
	}
	if at.After(rv[room]) {
		rv[room] = at
	}
	if rs := g.grants[userID]; rs != nil {
		delete(rs, room)
		if len(rs) == 0 {
			delete(g.grants, userID)
		}
	}
	return nil
}

// Has implements [Grants].
func (g *MemoryGrants) Has(_ context.Context, userID, room string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.grants[userID][room], nil
}

// RevokedAt implements [Grants].
func (g *MemoryGrants) RevokedAt(_ context.Context, userID, room string) (time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.revoked[userID][room], nil
}

// MemoryCutoffs is the in-memory [Cutoffs] of a single instance. It keeps
// each user's last cutoff for keep, the longest a dropped session is kept
// for recovery; older ones cannot matter and are dropped.
type MemoryCutoffs struct {
	keep time.Duration

	mu   sync.Mutex           // guards the following field
	cuts map[string]time.Time // user id -> last API disconnect
}

var _ Cutoffs = (*MemoryCutoffs)(nil)

// NewMemoryCutoffs returns an empty MemoryCutoffs that keeps a cutoff for
// keep (at least a minute).
func NewMemoryCutoffs(keep time.Duration) *MemoryCutoffs {
	return &MemoryCutoffs{keep: max(keep, time.Minute), cuts: make(map[string]time.Time)}
}

// Cut implements [Cutoffs].
func (c *MemoryCutoffs) Cut(_ context.Context, userID string, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, at := range c.cuts {
		if t.Sub(at) > c.keep {
			delete(c.cuts, id)
		}
	}
	if t.After(c.cuts[userID]) {
		c.cuts[userID] = t
	}
	return nil
}

// Since implements [Cutoffs].
func (c *MemoryCutoffs) Since(_ context.Context, userID string) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts[userID], nil
}
