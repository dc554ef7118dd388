package rooms

import (
	"context"
	"sync"
)

var _ Presence = (*MemoryPresence)(nil)

// MemoryPresence is the single-instance [Presence]: the connected sockets of
// each user, in memory. Nothing can crash away from it, so Reap finds nothing.
type MemoryPresence struct {
	mu    sync.Mutex // guards the following field
	users map[string]*memoryPresenceEntry
}

type memoryPresenceEntry struct {
	name    string
	sockets map[string]struct{}
}

// NewMemoryPresence returns an empty [MemoryPresence].
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{users: make(map[string]*memoryPresenceEntry)}
}

// Connect implements [Presence].
func (p *MemoryPresence) Connect(_ context.Context, u User, socketID string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.users[u.ID]
	if e == nil {
		e = &memoryPresenceEntry{sockets: make(map[string]struct{})}
		p.users[u.ID] = e
	}
	e.name = u.Name
	e.sockets[socketID] = struct{}{}
	return len(e.sockets) == 1, nil
}

// Disconnect implements [Presence].
func (p *MemoryPresence) Disconnect(_ context.Context, userID, socketID string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.users[userID]
	if e == nil {
		return false, nil
	}
	if _, ok := e.sockets[socketID]; !ok {
		return false, nil
	}
	delete(e.sockets, socketID)
	if len(e.sockets) == 0 {
		delete(p.users, userID)
		return true, nil
	}
	return false, nil
}

// Online implements [Presence].
func (p *MemoryPresence) Online(_ context.Context, userIDs []string) ([]User, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]User, 0, len(userIDs))
	for _, id := range userIDs {
		if e := p.users[id]; e != nil {
			out = append(out, User{ID: id, Name: e.name})
		}
	}
	return out, nil
}

// Reap implements [Presence]; a single instance has nothing to reap.
func (p *MemoryPresence) Reap(context.Context) ([]User, error) { return nil, nil }
