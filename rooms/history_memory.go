package rooms

import (
	"context"
	"sort"
	"sync"
	"time"
)

var _ History = (*MemoryHistory)(nil)

// MemoryHistory is the single-instance [History]: the newest messages of
// each room in memory. Ids are "<ms>-<seq>" like Redis stream ids, so
// clients see the same id format in both modes.
type MemoryHistory struct {
	size int
	ttl  time.Duration // a room's history expires this long after its last message; 0: never
	now  func() time.Time

	mu        sync.Mutex // guards the following fields
	rooms     map[string]*memoryRoomHistory
	lastSweep time.Time // see history_retention.go
}

// memoryRoomHistory is one room's history. Dropped messages are cut off the
// front of the slices only once as many as size have piled up, so that an
// append costs O(1) amortised instead of a copy of the whole room.
type memoryRoomHistory struct {
	mu       sync.Mutex // guards the following fields
	messages []Message  // oldest first; the kept ones are messages[start:]
	ids      []MessageID
	start    int
	last     MessageID // the newest id ever given in this room
	trimmed  MessageID // the newest id dropped by the cap; zero when none
	lastAt   time.Time // when the newest message was appended
}

// NewMemoryHistory returns a [MemoryHistory] keeping size messages per room.
func NewMemoryHistory(size int) *MemoryHistory {
	if size < 1 {
		size = 1
	}
	return &MemoryHistory{size: size, now: time.Now, rooms: make(map[string]*memoryRoomHistory)}
}

func (h *MemoryHistory) room(name string, create bool) *memoryRoomHistory {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepLocked()
	r := h.rooms[name]
	if r == nil && create {
		r = &memoryRoomHistory{}
		h.rooms[name] = r
	}
	return r
}

// Append implements [History].
func (h *MemoryHistory) Append(_ context.Context, m Message) (Message, error) {
	r := h.room(m.Room, true)
	now := h.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	id := MessageID{MS: uint64(now.UnixMilli())}
	if !r.last.Less(id) {
		id = MessageID{MS: r.last.MS, Seq: r.last.Seq + 1}
	}
	r.last = id
	r.lastAt = now
	m.ID = id.String()
	r.messages = append(r.messages, m)
	r.ids = append(r.ids, id)
	if kept := len(r.ids) - r.start; kept > h.size {
		r.messages[r.start] = Message{} // let the text go
		r.trimmed = r.ids[r.start]
		r.start++
	}
	if r.start >= h.size {
		r.messages = append(make([]Message, 0, 2*h.size), r.messages[r.start:]...)
		r.ids = append(make([]MessageID, 0, 2*h.size), r.ids[r.start:]...)
		r.start = 0
	}
	return m, nil
}

// Page implements [History].
func (h *MemoryHistory) Page(_ context.Context, room string, q Query) (Page, error) {
	r := h.room(room, false)
	if r == nil {
		return Page{Messages: []Message{}}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h.expired(r, h.now()) {
		return Page{Messages: []Message{}}, nil
	}
	ids, messages := r.ids[r.start:], r.messages[r.start:]
	var from, to int // the window [from, to) of the kept messages
	var gap bool
	switch {
	case q.After != "":
		after, _ := ParseID(q.After)
		from = sort.Search(len(ids), func(i int) bool { return after.Less(ids[i]) })
		to = min(from+q.Limit, len(ids))
		gap = after.Less(r.trimmed)
	case q.Before != "":
		before, _ := ParseID(q.Before)
		to = sort.Search(len(ids), func(i int) bool { return !ids[i].Less(before) })
		from = max(0, to-q.Limit)
	default:
		to = len(ids)
		from = max(0, to-q.Limit)
	}
	out := make([]Message, to-from)
	copy(out, messages[from:to])
	return Page{Messages: out, Gap: gap}, nil
}
