package rooms

import (
	"context"
	"sort"
	"sync"
	"time"
)

var _ History = (*MemoryHistory)(nil)

// MemoryHistory is the single-instance [History]: a bounded slice of
// messages per room. Ids are "<ms>-<seq>" like Redis stream ids, so clients
// see the same id format in both modes.
type MemoryHistory struct {
	size int
	now  func() time.Time

	mu    sync.Mutex // guards the following field
	rooms map[string]*memoryRoomHistory
}

type memoryRoomHistory struct {
	messages []Message // oldest first, at most size
	ids      []MessageID
	last     MessageID // the newest id ever given in this room
	trimmed  MessageID // the newest id dropped by the cap; zero when none
}

// NewMemoryHistory returns a [MemoryHistory] keeping size messages per room.
func NewMemoryHistory(size int) *MemoryHistory {
	if size < 1 {
		size = 1
	}
	return &MemoryHistory{size: size, now: time.Now, rooms: make(map[string]*memoryRoomHistory)}
}

// Append implements [History].
func (h *MemoryHistory) Append(_ context.Context, m Message) (Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[m.Room]
	if r == nil {
		r = &memoryRoomHistory{}
		h.rooms[m.Room] = r
	}
	id := MessageID{MS: uint64(h.now().UnixMilli())}
	if !r.last.Less(id) {
		id = MessageID{MS: r.last.MS, Seq: r.last.Seq + 1}
	}
	r.last = id
	m.ID = id.String()
	r.messages = append(r.messages, m)
	r.ids = append(r.ids, id)
	if over := len(r.messages) - h.size; over > 0 {
		r.trimmed = r.ids[over-1]
		r.messages = append([]Message(nil), r.messages[over:]...)
		r.ids = append([]MessageID(nil), r.ids[over:]...)
	}
	return m, nil
}

// Page implements [History].
func (h *MemoryHistory) Page(_ context.Context, room string, q Query) (Page, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[room]
	if r == nil {
		return Page{Messages: []Message{}}, nil
	}
	var from, to int // the window [from, to) of r.messages
	var gap bool
	switch {
	case q.After != "":
		after, _ := ParseID(q.After)
		from = sort.Search(len(r.ids), func(i int) bool { return after.Less(r.ids[i]) })
		to = min(from+q.Limit, len(r.ids))
		gap = after.Less(r.trimmed)
	case q.Before != "":
		before, _ := ParseID(q.Before)
		to = sort.Search(len(r.ids), func(i int) bool { return !r.ids[i].Less(before) })
		from = max(0, to-q.Limit)
	default:
		to = len(r.ids)
		from = max(0, to-q.Limit)
	}
	out := make([]Message, to-from)
	copy(out, r.messages[from:to])
	return Page{Messages: out, Gap: gap}, nil
}
