package rooms

import (
	"context"
	"sort"
	"sync"
)

// Bounds of one sync request.
const (
	// DefaultSyncRoomLimit is how many messages a sync answers per room
	// when the request does not say.
	DefaultSyncRoomLimit = 50
	// MaxSyncMessages bounds the messages of one sync answer, over all its
	// rooms: rooms past it answer More with fewer (or no) messages.
	MaxSyncMessages = 1000
	// MaxSyncTextBytes bounds the message text of one sync answer, in bytes,
	// so that an answer stays a few MiB at most whatever the message size.
	MaxSyncTextBytes = 1 << 20
	// syncParallel is how many rooms' history one sync reads at once.
	syncParallel = 8
)

// SyncQuery is what a client saw last in each room: the id of the newest
// message it has, or "" when it has none.
type SyncQuery struct {
	// Rooms maps each room to the last message id seen ("" for none).
	Rooms map[string]string
	// Limit is the most messages per room, 1 to [MaxHistoryLimit]; 0 is
	// [DefaultSyncRoomLimit].
	Limit int
}

// SyncRoom is one room's part of a sync answer: either Err, or the messages
// the client missed, oldest first.
type SyncRoom struct {
	// Messages are the messages after the id sent, oldest first; with no
	// id sent, the room's newest messages.
	Messages []Message
	// Gap is true when messages after the id sent were dropped by the
	// history cap or its retention: the client has missed some for good.
	Gap bool
	// More is true when the room has messages newer than the last one in
	// Messages (or than the id sent, when Messages is empty) that this
	// answer left out; another sync from there fetches them.
	More bool
	// Err is this room's refusal (not a member, a bad id, storage down).
	Err *Error
}

// Sync answers, in one request, what userID missed in each room of q:
// the messages after the last id seen, bounded per room by q.Limit and in
// total by [MaxSyncMessages] and [MaxSyncTextBytes]. A room the user is
// not in, or with a bad id, answers its own error; only a request for more
// rooms than a user may be in, or a membership lookup that fails, fails as
// a whole.
func (c *Chat) Sync(ctx context.Context, userID string, q SyncQuery) (map[string]SyncRoom, error) {
	if len(q.Rooms) > c.limits.RoomsPerUser {
		return nil, Errorf(CodeBadRequest, "sync at most %d rooms at once (a user's most), not %d", c.limits.RoomsPerUser, len(q.Rooms))
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultSyncRoomLimit
	}
	if limit < 1 || limit > MaxHistoryLimit {
		return nil, Errorf(CodeBadRequest, "limit must be 1 to %d", MaxHistoryLimit)
	}
	out := make(map[string]SyncRoom, len(q.Rooms))
	if len(q.Rooms) == 0 {
		return out, nil
	}
	mine, err := c.Rooms(ctx, userID)
	if err != nil {
		return nil, err
	}
	member := make(map[string]bool, len(mine))
	for _, r := range mine {
		member[r] = true
	}
	names := make([]string, 0, len(q.Rooms))
	for room, after := range q.Rooms {
		switch {
		case ValidateRoom(room) != nil:
			out[room] = SyncRoom{Err: ErrorOf(ValidateRoom(room))}
		case after != "" && !validID(after):
			out[room] = SyncRoom{Err: Errorf(CodeBadRequest, "the last id of %q must be a message id such as \"1700000000000-0\", or null", room)}
		case !member[room]:
			out[room] = SyncRoom{Err: Errorf(CodeForbidden, "join room %q to read its history", room)}
		default:
			names = append(names, room)
		}
	}
	// Rooms in name order, so that which rooms the total bound cuts is
	// the same on every retry.
	sort.Strings(names)
	left, textLeft := MaxSyncMessages, MaxSyncTextBytes
	for i := 0; i < len(names); i += syncParallel {
		wave := names[i:min(i+syncParallel, len(names))]
		parts := make([]SyncRoom, len(wave))
		reserved := make([]int, len(wave))
		var wg sync.WaitGroup
		for j, room := range wave {
			// Each room of a wave reserves its whole limit from what is
			// left, and gives back what it did not use: a wave overshoots
			// the text bound by at most its own pages.
			n := min(limit, left)
			if n == 0 || textLeft <= 0 {
				parts[j] = SyncRoom{Messages: []Message{}, More: true}
				continue
			}
			left -= n
			reserved[j] = n
			wg.Add(1)
			go func() {
				defer wg.Done()
				parts[j] = c.syncRoom(ctx, room, q.Rooms[room], n, limit)
			}()
		}
		wg.Wait()
		for j, room := range wave {
			p := parts[j]
			out[room] = p
			left += reserved[j] - len(p.Messages)
			for _, m := range p.Messages {
				textLeft -= len(m.Text)
			}
		}
	}
	return out, nil
}

// syncRoom reads one room's part: n messages at most, where the request
// asked for limit per room.
func (c *Chat) syncRoom(ctx context.Context, room, after string, n, limit int) SyncRoom {
	if after == "" {
		if n < limit {
			// The newest page is all or nothing: a cut one would hide
			// messages between it and whatever the client fetches next.
			return SyncRoom{Messages: []Message{}, More: true}
		}
		p, err := c.st.History.Page(ctx, room, Query{Limit: n})
		if err != nil {
			return SyncRoom{Err: Unavailable(err)}
		}
		return SyncRoom{Messages: nonNil(p.Messages)}
	}
	// One more than asked tells whether more follow; the stores give at
	// most MaxHistoryLimit.
	ask := min(n+1, MaxHistoryLimit)
	p, err := c.st.History.Page(ctx, room, Query{After: after, Limit: ask})
	if err != nil {
		return SyncRoom{Err: Unavailable(err)}
	}
	msgs := p.Messages
	more := len(msgs) > n || (ask == n && len(msgs) == n)
	if len(msgs) > n {
		msgs = msgs[:n]
	}
	return SyncRoom{Messages: nonNil(msgs), Gap: p.Gap, More: more}
}

func validID(s string) bool {
	_, ok := ParseID(s)
	return ok
}

func nonNil(m []Message) []Message {
	if m == nil {
		return []Message{}
	}
	return m
}
