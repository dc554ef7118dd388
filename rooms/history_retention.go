package rooms

import "time"

// DefaultHistoryTTL is how long a room's history is kept after its last
// message when history.ttl is not set: a week. A room in use, with a
// message a week, keeps its whole history (history.size); a room that was
// abandoned, or made up by a client to fill memory, costs at most a week.
const DefaultHistoryTTL = 7 * 24 * time.Hour

// NewMemoryHistoryTTL returns a [MemoryHistory] keeping size messages per
// room, whose rooms expire ttl after their last message (0: never). An
// expired room answers as an empty one and its memory is freed on a later
// call, at most a tenth of ttl (and a minute) after it expired.
func NewMemoryHistoryTTL(size int, ttl time.Duration) *MemoryHistory {
	h := NewMemoryHistory(size)
	h.ttl = max(0, ttl)
	return h
}

// expired reports whether r's history is past the TTL at now; r.mu held.
func (h *MemoryHistory) expired(r *memoryRoomHistory, now time.Time) bool {
	return h.ttl > 0 && !r.lastAt.IsZero() && now.Sub(r.lastAt) >= h.ttl
}

// sweepLocked frees the rooms past the TTL, at most every tenth of the TTL
// (and every minute); h.mu held.
func (h *MemoryHistory) sweepLocked() {
	if h.ttl <= 0 {
		return
	}
	now := h.now()
	if now.Sub(h.lastSweep) < min(h.ttl/10, time.Minute) {
		return
	}
	h.lastSweep = now
	for name, r := range h.rooms {
		r.mu.Lock()
		gone := h.expired(r, now)
		r.mu.Unlock()
		if gone {
			delete(h.rooms, name)
		}
	}
}

// Len is the number of rooms whose history is held in memory.
func (h *MemoryHistory) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}
