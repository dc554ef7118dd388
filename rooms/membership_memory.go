package rooms

import (
	"context"
	"slices"
	"sync"
)

var (
	_ Membership   = (*MemoryMembership)(nil)
	_ RoomCounting = (*MemoryMembership)(nil)
)

// MemoryMembership is the single-instance [Membership]: two maps under one
// mutex.
type MemoryMembership struct {
	mu     sync.Mutex                     // guards the following fields
	byUser map[string]map[string]struct{} // user id -> rooms
	byRoom map[string]map[string]struct{} // room -> user ids
}

// NewMemoryMembership returns an empty [MemoryMembership].
func NewMemoryMembership() *MemoryMembership {
	return &MemoryMembership{
		byUser: make(map[string]map[string]struct{}),
		byRoom: make(map[string]map[string]struct{}),
	}
}

// Join implements [Membership].
func (m *MemoryMembership) Join(ctx context.Context, userID, room string, maxRooms int) (bool, error) {
	c, err := m.JoinCounted(ctx, userID, room, maxRooms)
	return c.Member, err
}

// JoinCounted implements [RoomCounting].
func (m *MemoryMembership) JoinCounted(_ context.Context, userID, room string, maxRooms int) (Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.byUser[userID]
	if _, ok := rs[room]; ok {
		return Change{}, nil
	}
	if len(rs) >= maxRooms {
		return Change{}, ErrTooManyRooms
	}
	if rs == nil {
		rs = make(map[string]struct{})
		m.byUser[userID] = rs
	}
	rs[room] = struct{}{}
	us := m.byRoom[room]
	if us == nil {
		us = make(map[string]struct{})
		m.byRoom[room] = us
	}
	us[userID] = struct{}{}
	return Change{Member: true, Room: len(us) == 1}, nil
}

// Leave implements [Membership].
func (m *MemoryMembership) Leave(ctx context.Context, userID, room string) (bool, error) {
	c, err := m.LeaveCounted(ctx, userID, room)
	return c.Member, err
}

// LeaveCounted implements [RoomCounting].
func (m *MemoryMembership) LeaveCounted(_ context.Context, userID, room string) (Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.byUser[userID]
	if _, ok := rs[room]; !ok {
		return Change{}, nil
	}
	delete(rs, room)
	if len(rs) == 0 {
		delete(m.byUser, userID)
	}
	us := m.byRoom[room]
	delete(us, userID)
	if len(us) == 0 {
		delete(m.byRoom, room)
	}
	return Change{Member: true, Room: len(us) == 0}, nil
}

// Rooms implements [Membership].
func (m *MemoryMembership) Rooms(_ context.Context, userID string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedKeys(m.byUser[userID]), nil
}

// IsMember implements [Membership].
func (m *MemoryMembership) IsMember(_ context.Context, userID, room string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byUser[userID][room]
	return ok, nil
}

// Members implements [Membership].
func (m *MemoryMembership) Members(_ context.Context, room string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedKeys(m.byRoom[room]), nil
}

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
