package rooms

import (
	"context"
	"errors"
)

// ErrTooManyRooms is returned by [Membership.Join] when the user is already
// in the largest allowed number of rooms.
var ErrTooManyRooms = errors.New("too many rooms")

// Membership records which rooms each user belongs to. Membership belongs to
// the user, not to a socket: it outlives every connection.
type Membership interface {
	// Join makes userID a member of room. joined is false when the user
	// already was one. When the user is in maxRooms rooms already (and not
	// in this one), Join returns ErrTooManyRooms.
	Join(ctx context.Context, userID, room string, maxRooms int) (joined bool, err error)
	// Leave ends userID's membership; left is false when there was none.
	Leave(ctx context.Context, userID, room string) (left bool, err error)
	// Rooms lists the rooms of userID, sorted.
	Rooms(ctx context.Context, userID string) ([]string, error)
	// IsMember reports whether userID belongs to room.
	IsMember(ctx context.Context, userID, room string) (bool, error)
	// Members lists the user ids of room's members, sorted.
	Members(ctx context.Context, room string) ([]string, error)
}

// Change is what a membership Join or Leave changed.
type Change struct {
	// Member is true when the membership was added (Join) or ended (Leave).
	Member bool
	// Room is true when the room got its first member (Join) or lost its
	// last one (Leave); it is only ever true with Member.
	Room bool
}

// RoomCounting is a [Membership] that tells, in the same atomic step as a
// join or leave, whether the room got its first member or lost its last,
// so that across instances exactly one join reports a room occupied and
// one leave reports it vacated. [Chat] uses it when the store has it.
type RoomCounting interface {
	// JoinCounted is [Membership.Join], reporting the change.
	JoinCounted(ctx context.Context, userID, room string, maxRooms int) (Change, error)
	// LeaveCounted is [Membership.Leave], reporting the change.
	LeaveCounted(ctx context.Context, userID, room string) (Change, error)
}

// Presence records which users have at least one connected socket anywhere.
type Presence interface {
	// Connect records a connected socket of u. first is true when it is the
	// user's only connected socket anywhere.
	Connect(ctx context.Context, u User, socketID string) (first bool, err error)
	// Disconnect forgets a socket. last is true when the user has no
	// connected socket left anywhere.
	Disconnect(ctx context.Context, userID, socketID string) (last bool, err error)
	// Online returns, in the order given, the users among userIDs that have a
	// connected socket.
	Online(ctx context.Context, userIDs []string) ([]User, error)
	// Reap forgets the sockets of instances that stopped renewing their
	// entries (a crashed instance) and returns the users that have no
	// connected socket left because of it. A store without other instances
	// returns nothing. On an error it still returns the users it removed.
	Reap(ctx context.Context) ([]User, error)
}

// History keeps the latest messages of each room.
type History interface {
	// Append stores m (its ID empty) and returns it with the ID it was
	// stored under. Ids only grow within a room, across all instances. The
	// room keeps its newest messages up to the store's size.
	Append(ctx context.Context, m Message) (Message, error)
	// Page answers q (already validated) for room, oldest first.
	Page(ctx context.Context, room string, q Query) (Page, error)
}

// MemberHistory is a [History] that can check the sender's membership in
// the same step as an append. [Chat.Send] uses it, when the History store
// has it and is no [SendStore], for a socket's send, which must come from a
// member: one store round trip per message without a clientMsgId instead
// of two.
type MemberHistory interface {
	History
	// AppendIfMember stores m like Append when m.UserID is a member of
	// m.Room, whose membership the store reads where [Membership] writes it.
	// member is false, and nothing is stored, when the user is not one.
	AppendIfMember(ctx context.Context, m Message) (stored Message, member bool, err error)
}

// SendStore is a [History] that does all of a send in one atomic step: the
// sender's membership check, the lookup of an earlier send with the same
// clientMsgId, the append and the record of the send. [Chat] uses it, when
// the History store has it, for every send: one store round trip per
// message, with or without a clientMsgId.
type SendStore interface {
	History
	// StoreSend stores m (its ID empty) like Append, after what step asks
	// for, and tells what it did in the result's Outcome.
	StoreSend(ctx context.Context, m Message, step SendStep) (SendResult, error)
}

// SendStep is what [SendStore.StoreSend] checks and records besides the
// append.
type SendStep struct {
	// MemberOnly refuses the send unless m.UserID is a member of m.Room,
	// whose membership the store reads where [Membership] writes it.
	MemberOnly bool
	// Key is the send's idempotency key, empty without a clientMsgId: the
	// room, a NUL, and what tells the sender and the clientMsgId apart. The
	// store reads and writes the records of [Idempotency] under it: a
	// completed send's record, without its text, is kept for the
	// Idempotency store's time; a key claimed there is in progress.
	Key string
	// Deliver, when not nil, is the message's delivery to its room, which
	// the store may carry out in the same step as it stores the message;
	// the result's Delivered says whether it did. A store that cannot
	// leaves it to the caller.
	Deliver Deliverer
}

// Deliverer prepares a message's delivery to its room, for a [SendStore]
// that can deliver in the same step as it stores: chatd's Redis store,
// beside the Redis socket.io adapter on one Redis server, stores, records
// for recovery and publishes in one script. PrepareDelivery gets the
// message about to be stored, without its ID, and returns what the store is
// to run, of a type that store knows, or nil: then the store only stores,
// and the caller delivers.
type Deliverer interface {
	PrepareDelivery(m Message) any
}

// SendOutcome is what a [SendStore.StoreSend] did.
type SendOutcome int

// The outcomes of a StoreSend.
const (
	// SendStored: the message was appended (and recorded under the key).
	SendStored SendOutcome = iota
	// SendPrior: the key holds an earlier send, the result's Message,
	// which has its text when history still has the message and none
	// otherwise. Nothing was stored.
	SendPrior
	// SendPending: another send with the key is in progress. Nothing was
	// stored.
	SendPending
	// SendNotMember: the sender is not a member of the room (MemberOnly).
	// Nothing was stored or looked up.
	SendNotMember
)

// SendResult is the answer of a [SendStore.StoreSend].
type SendResult struct {
	Outcome SendOutcome
	// Message is the stored message (SendStored) or the earlier one
	// (SendPrior).
	Message Message
	// Delivered is set when the store delivered the stored message too
	// (SendStep.Deliver).
	Delivered bool
}

// Idempotency remembers which message a (room, user, clientMsgId) send
// produced, so that a retried send returns the original message.
type Idempotency interface {
	// Claim reserves key for a send in progress. It returns the stored
	// message when key already has one; claimed is true when the caller
	// holds the key now and must call Complete or Release. When both are
	// empty another send with the same key is still in progress.
	Claim(ctx context.Context, key string) (prior *Message, claimed bool, err error)
	// Complete stores m under a key the caller claimed.
	Complete(ctx context.Context, key string, m Message) error
	// Release gives up a claim whose send failed.
	Release(ctx context.Context, key string) error
}

// Stores bundles the four stores a [Chat] works on.
type Stores struct {
	Membership  Membership
	Presence    Presence
	History     History
	Idempotency Idempotency
}
