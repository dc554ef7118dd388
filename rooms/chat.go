package rooms

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"
)

// Limits are the chat rules' bounds.
type Limits struct {
	// MessageBytes is the largest message text, in bytes.
	MessageBytes int
	// RoomsPerUser is the largest number of rooms one user may belong to.
	RoomsPerUser int
	// PendingWait is how long a send waits for another send with the same
	// clientMsgId that is still in progress, in time. Zero means 2 s.
	PendingWait time.Duration
}

// DefaultMessageBytes is the largest message text when Limits leaves it
// zero, in bytes; config and server take their default from here.
const DefaultMessageBytes = 4096

// Chat applies the chat rules to the stores. Socket events and server API
// calls both enter chatd here, so both follow one set of rules. Chat returns
// [*Error] values for everything a client did wrong or could not get.
type Chat struct {
	limits Limits
	st     Stores
	now    func() time.Time
}

// NewChat returns a Chat over st. Zero limits get the protocol's defaults.
func NewChat(limits Limits, st Stores) (*Chat, error) {
	if st.Membership == nil || st.Presence == nil || st.History == nil || st.Idempotency == nil {
		return nil, errors.New("rooms: NewChat needs all four stores")
	}
	if limits.MessageBytes <= 0 {
		limits.MessageBytes = DefaultMessageBytes
	}
	if limits.RoomsPerUser <= 0 {
		limits.RoomsPerUser = 100
	}
	if limits.PendingWait <= 0 {
		limits.PendingWait = 2 * time.Second
	}
	return &Chat{limits: limits, st: st, now: time.Now}, nil
}

// Join makes u a member of room. The change's Member is false when u
// already was one; its Room is true when u is the room's first member
// (with a store that is [RoomCounting]; otherwise never).
func (c *Chat) Join(ctx context.Context, u User, room string) (Change, error) {
	if err := ValidateRoom(room); err != nil {
		return Change{}, err
	}
	var ch Change
	var err error
	if rc, ok := c.st.Membership.(RoomCounting); ok {
		ch, err = rc.JoinCounted(ctx, u.ID, room, c.limits.RoomsPerUser)
	} else {
		ch.Member, err = c.st.Membership.Join(ctx, u.ID, room, c.limits.RoomsPerUser)
	}
	if errors.Is(err, ErrTooManyRooms) {
		return Change{}, Errorf(CodeTooLarge, "you are in %d rooms already, the most allowed; leave one first", c.limits.RoomsPerUser)
	}
	if err != nil {
		return Change{}, Unavailable(err)
	}
	return ch, nil
}

// Leave ends u's membership of room. The change's Member is false when there
// was none; its Room is true when u was the room's last member (with a store
// that is [RoomCounting]).
func (c *Chat) Leave(ctx context.Context, u User, room string) (Change, error) {
	if err := ValidateRoom(room); err != nil {
		return Change{}, err
	}
	var ch Change
	var err error
	if rc, ok := c.st.Membership.(RoomCounting); ok {
		ch, err = rc.LeaveCounted(ctx, u.ID, room)
	} else {
		ch.Member, err = c.st.Membership.Leave(ctx, u.ID, room)
	}
	if err != nil {
		return Change{}, Unavailable(err)
	}
	return ch, nil
}

// Send is one chat message to store.
type Send struct {
	Room        string
	Text        string
	ClientMsgID string
}

// Send stores a message that member u sends (a socket's message request): u
// must be a member of the room. fresh is false when the message was stored
// before under the same clientMsgId: it is the original message, and must
// not be delivered again.
func (c *Chat) Send(ctx context.Context, u User, s Send) (msg Message, fresh bool, err error) {
	msg, fresh, _, err = c.send(ctx, u, s, true, nil)
	return msg, fresh, err
}

// SendAndDeliver is Send, offering the store to deliver a fresh message in
// the same step as it stores it (see [SendStep.Deliver]): delivered says
// whether it did. When it did not, the caller delivers a fresh message.
func (c *Chat) SendAndDeliver(ctx context.Context, u User, s Send, d Deliverer) (msg Message, fresh, delivered bool, err error) {
	return c.send(ctx, u, s, true, d)
}

// Post stores a message that a backend sends as u through the server API:
// u need not be a member of the room (nor a known user). fresh is as in
// [Chat.Send].
func (c *Chat) Post(ctx context.Context, u User, s Send) (msg Message, fresh bool, err error) {
	msg, fresh, _, err = c.send(ctx, u, s, false, nil)
	return msg, fresh, err
}

// PostAndDeliver is Post, offering the store to deliver a fresh message as
// SendAndDeliver does.
func (c *Chat) PostAndDeliver(ctx context.Context, u User, s Send, d Deliverer) (msg Message, fresh, delivered bool, err error) {
	return c.send(ctx, u, s, false, d)
}

// send is Send and SendAndDeliver (memberOnly), Post and PostAndDeliver.
func (c *Chat) send(ctx context.Context, u User, s Send, memberOnly bool, d Deliverer) (msg Message, fresh, delivered bool, err error) {
	if err := ValidateRoom(s.Room); err != nil {
		return Message{}, false, false, err
	}
	if err := ValidateText(s.Text, c.limits.MessageBytes); err != nil {
		return Message{}, false, false, err
	}
	if err := ValidateClientMsgID(s.ClientMsgID); err != nil {
		return Message{}, false, false, err
	}
	if ss, ok := c.st.History.(SendStore); ok {
		return c.sendOneStep(ctx, ss, u, s, memberOnly, d)
	}
	msg, fresh, err = c.sendSteps(ctx, u, s, memberOnly)
	return msg, fresh, false, err
}

// sendSteps is send on stores that are no [SendStore]: a step per store.
func (c *Chat) sendSteps(ctx context.Context, u User, s Send, memberOnly bool) (msg Message, fresh bool, err error) {
	// With a MemberHistory the append itself checks the membership. A
	// non-member's send with a clientMsgId then claims the key before it
	// is refused, and releases it.
	mh, combined := c.st.History.(MemberHistory)
	combined = combined && memberOnly
	if memberOnly && !combined {
		if err := c.checkMember(ctx, u.ID, s.Room); err != nil {
			return Message{}, false, err
		}
	}
	m := Message{Room: s.Room, UserID: u.ID, Name: u.Name, Text: s.Text, ClientMsgID: s.ClientMsgID}
	if s.ClientMsgID == "" {
		m.TS = c.now().UnixMilli()
		m, err = c.append(ctx, mh, combined, m)
		if err != nil {
			return Message{}, false, err
		}
		return m, true, nil
	}
	key := idempotencyKey(s.Room, u.ID, s.ClientMsgID)
	prior, err := c.claim(ctx, key)
	if err != nil {
		return Message{}, false, err
	}
	if prior != nil {
		if combined {
			// A retry of a stored send: no append checks the membership.
			if err := c.checkMember(ctx, u.ID, s.Room); err != nil {
				return Message{}, false, err
			}
		}
		return c.original(ctx, *prior, s.Text), false, nil
	}
	m.TS = c.now().UnixMilli()
	m, err = c.append(ctx, mh, combined, m)
	if err != nil {
		_ = c.st.Idempotency.Release(context.WithoutCancel(ctx), key)
		return Message{}, false, err
	}
	// The record keeps everything but the text, which history has: a
	// client cannot make chatd hold its texts twice, for the whole TTL.
	record := m
	record.Text = ""
	if err := c.st.Idempotency.Complete(ctx, key, record); err != nil {
		// The message is stored and is delivered; only its record is lost
		// (a storage failure between two writes). The claim expires by
		// itself, after which a retry would store the message again.
		return m, true, nil
	}
	return m, true, nil
}

// sendOneStep is send on a [SendStore]: one store call per attempt, and
// more only while another send with the same clientMsgId is in progress.
func (c *Chat) sendOneStep(ctx context.Context, ss SendStore, u User, s Send, memberOnly bool, d Deliverer) (Message, bool, bool, error) {
	m := Message{Room: s.Room, UserID: u.ID, Name: u.Name, Text: s.Text, ClientMsgID: s.ClientMsgID}
	step := SendStep{MemberOnly: memberOnly, Deliver: d}
	if s.ClientMsgID != "" {
		step.Key = idempotencyKey(s.Room, u.ID, s.ClientMsgID)
	}
	w := c.newPendingWait()
	for {
		m.TS = c.now().UnixMilli()
		res, err := ss.StoreSend(ctx, m, step)
		if err != nil {
			return Message{}, false, false, Unavailable(err)
		}
		switch res.Outcome {
		case SendStored:
			return res.Message, true, res.Delivered, nil
		case SendNotMember:
			return Message{}, false, false, notMember(s.Room)
		case SendPrior:
			prior := res.Message
			if prior.Text == "" {
				// History dropped the message: the retry repeats its text.
				prior.Text = s.Text
			}
			return prior, false, false, nil
		}
		if err := w.pause(ctx); err != nil {
			return Message{}, false, false, err
		}
	}
}

// checkMember refuses a send to a room the user is not a member of.
func (c *Chat) checkMember(ctx context.Context, userID, room string) error {
	ok, err := c.st.Membership.IsMember(ctx, userID, room)
	if err != nil {
		return Unavailable(err)
	}
	if !ok {
		return notMember(room)
	}
	return nil
}

func notMember(room string) error {
	return Errorf(CodeForbidden, "join room %q before sending to it", room)
}

// append stores m, through AppendIfMember when combined.
func (c *Chat) append(ctx context.Context, mh MemberHistory, combined bool, m Message) (Message, error) {
	if !combined {
		stored, err := c.st.History.Append(ctx, m)
		if err != nil {
			return Message{}, Unavailable(err)
		}
		return stored, nil
	}
	stored, member, err := mh.AppendIfMember(ctx, m)
	if err != nil {
		return Message{}, Unavailable(err)
	}
	if !member {
		return Message{}, notMember(m.Room)
	}
	return stored, nil
}

// original completes the record of an earlier send with its text, from
// history; a message already dropped from history gets the retry's text,
// which a client retrying a send repeats.
func (c *Chat) original(ctx context.Context, rec Message, retryText string) Message {
	if rec.Text != "" {
		return rec
	}
	rec.Text = retryText
	id, ok := ParseID(rec.ID)
	if !ok {
		return rec
	}
	prev := MessageID{MS: id.MS, Seq: id.Seq - 1}
	if id.Seq == 0 {
		if id.MS == 0 {
			return rec
		}
		prev = MessageID{MS: id.MS - 1, Seq: math.MaxUint64}
	}
	p, err := c.st.History.Page(ctx, rec.Room, Query{After: prev.String(), Limit: 1})
	if err == nil && len(p.Messages) == 1 && p.Messages[0].ID == rec.ID {
		return p.Messages[0]
	}
	return rec
}

// claim takes key for a send, waiting a bounded time for a send with the same
// key that is in progress elsewhere. It returns the prior message, or nil when
// the caller holds the claim.
func (c *Chat) claim(ctx context.Context, key string) (*Message, error) {
	w := c.newPendingWait()
	for {
		prior, claimed, err := c.st.Idempotency.Claim(ctx, key)
		if err != nil {
			return nil, Unavailable(err)
		}
		if claimed {
			return nil, nil
		}
		if prior != nil {
			return prior, nil
		}
		if err := w.pause(ctx); err != nil {
			return nil, err
		}
	}
}

// pendingWait paces the attempts of a send whose clientMsgId another send
// holds, for at most Limits.PendingWait.
type pendingWait struct {
	now      func() time.Time
	deadline time.Time
	wait     time.Duration
}

func (c *Chat) newPendingWait() *pendingWait {
	return &pendingWait{now: c.now, deadline: c.now().Add(c.limits.PendingWait), wait: 20 * time.Millisecond}
}

// pause waits before the next attempt, longer each time; past the deadline
// it returns the error the client gets instead.
func (w *pendingWait) pause(ctx context.Context) error {
	if w.now().After(w.deadline) {
		return Errorf(CodeUnavailable, "a send with this clientMsgId is still in progress; retry shortly")
	}
	t := time.NewTimer(w.wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return Unavailable(ctx.Err())
	case <-t.C:
	}
	w.wait = min(2*w.wait, 200*time.Millisecond)
	return nil
}

// idempotencyKey names a (room, user, clientMsgId) send. The parts are
// separated by a byte none of them may contain unescaped.
func idempotencyKey(room, userID, clientMsgID string) string {
	var b strings.Builder
	b.Grow(len(room) + len(userID) + len(clientMsgID) + 2)
	b.WriteString(room)
	b.WriteByte(0)
	b.WriteString(strings.ReplaceAll(userID, "\x00", "\x00\x00"))
	b.WriteByte(0)
	b.WriteString(clientMsgID)
	return b.String()
}

// History answers q for room to member userID (a socket's history
// request): the user must be a member of the room.
func (c *Chat) History(ctx context.Context, userID, room string, q Query) (Page, error) {
	return c.history(ctx, userID, room, q, true)
}

// RoomHistory answers q for room to a backend (the server API), which may
// read any room.
func (c *Chat) RoomHistory(ctx context.Context, room string, q Query) (Page, error) {
	return c.history(ctx, "", room, q, false)
}

// history is History (memberOnly) and RoomHistory.
func (c *Chat) history(ctx context.Context, userID, room string, q Query, memberOnly bool) (Page, error) {
	if err := ValidateRoom(room); err != nil {
		return Page{}, err
	}
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	if memberOnly {
		ok, err := c.st.Membership.IsMember(ctx, userID, room)
		if err != nil {
			return Page{}, Unavailable(err)
		}
		if !ok {
			return Page{}, Errorf(CodeForbidden, "join room %q to read its history", room)
		}
	}
	p, err := c.st.History.Page(ctx, room, q)
	if err != nil {
		return Page{}, Unavailable(err)
	}
	if p.Messages == nil {
		p.Messages = []Message{}
	}
	return p, nil
}

// Rooms lists the rooms userID belongs to, sorted.
func (c *Chat) Rooms(ctx context.Context, userID string) ([]string, error) {
	rs, err := c.st.Membership.Rooms(ctx, userID)
	if err != nil {
		return nil, Unavailable(err)
	}
	if rs == nil {
		rs = []string{}
	}
	return rs, nil
}

// IsMember reports whether userID belongs to room.
func (c *Chat) IsMember(ctx context.Context, userID, room string) (bool, error) {
	ok, err := c.st.Membership.IsMember(ctx, userID, room)
	if err != nil {
		return false, Unavailable(err)
	}
	return ok, nil
}

// Presence lists the members of room that have a connected socket anywhere.
func (c *Chat) Presence(ctx context.Context, room string) ([]User, error) {
	if err := ValidateRoom(room); err != nil {
		return nil, err
	}
	ids, err := c.st.Membership.Members(ctx, room)
	if err != nil {
		return nil, Unavailable(err)
	}
	users, err := c.st.Presence.Online(ctx, ids)
	if err != nil {
		return nil, Unavailable(err)
	}
	if users == nil {
		users = []User{}
	}
	return users, nil
}

// Connect records a new socket of u and returns u's rooms, and whether it is
// u's first connected socket anywhere (then u comes online).
func (c *Chat) Connect(ctx context.Context, u User, socketID string) (first bool, rooms []string, err error) {
	rooms, err = c.Rooms(ctx, u.ID)
	if err != nil {
		return false, nil, err
	}
	first, err = c.st.Presence.Connect(ctx, u, socketID)
	if err != nil {
		return false, nil, Unavailable(err)
	}
	return first, rooms, nil
}

// Disconnect forgets a socket of userID and returns whether it was the user's
// last one anywhere (then the user goes offline), with the user's rooms.
func (c *Chat) Disconnect(ctx context.Context, userID, socketID string) (last bool, rooms []string, err error) {
	last, err = c.st.Presence.Disconnect(ctx, userID, socketID)
	if err != nil {
		return false, nil, Unavailable(err)
	}
	if !last {
		return false, nil, nil
	}
	rooms, err = c.Rooms(ctx, userID)
	return true, rooms, err
}

// Reap finds users whose last socket was on an instance that stopped (see
// [Presence.Reap]) and returns each with its rooms, so that the caller can
// announce them offline.
func (c *Chat) Reap(ctx context.Context) (map[User][]string, error) {
	// A failed reap may still have removed some users; no other instance
	// will report them, so they are announced along with the error.
	users, reapErr := c.st.Presence.Reap(ctx)
	out := make(map[User][]string, len(users))
	var errs []error
	if reapErr != nil {
		errs = append(errs, Unavailable(reapErr))
	}
	for _, u := range users {
		rs, err := c.Rooms(ctx, u.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[u] = rs
	}
	return out, errors.Join(errs...)
}
