package rooms

import (
	"context"
	"slices"
	"sync"
)

var _ Membership = (*MemoryMembership)(nil)

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
func (m *MemoryMembership) Join(_ context.Context, userID, room string, maxRooms int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.byUser[userID]
	if _, ok := rs[room]; ok {
		return false, nil
	}
	if len(rs) >= maxRooms {
		return false, ErrTooManyRooms
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
	return true, nil
}

// Leave implements [Membership].
func (m *MemoryMembership) Leave(_ context.Context, userID, room string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.byUser[userID]
	if _, ok := rs[room]; !ok {
		return false, nil
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
	return true, nil
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
