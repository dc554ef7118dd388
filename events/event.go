package events

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// The event types chatd publishes.
const (
	// MessageCreated: a message was stored in a room, sent by a socket or
	// posted through the server API.
	MessageCreated = "message.created"
	// MemberJoined: a user became a member of a room.
	MemberJoined = "member.joined"
	// MemberLeft: a user's membership of a room ended.
	MemberLeft = "member.left"
	// UserOnline: a user got their first connected socket anywhere.
	UserOnline = "user.online"
	// UserOffline: a user lost their last connected socket anywhere,
	// including sockets lost with a crashed instance.
	UserOffline = "user.offline"
	// RoomOccupied: a room got its first member.
	RoomOccupied = "room.occupied"
	// RoomVacated: a room lost its last member.
	RoomVacated = "room.vacated"
)

// Types lists every event type, in the order the documentation gives them.
var Types = []string{MessageCreated, MemberJoined, MemberLeft, UserOnline, UserOffline, RoomOccupied, RoomVacated}

// KnownType reports whether t is one of [Types].
func KnownType(t string) bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Event is one thing that happened, as the backend receives it.
type Event struct {
	// ID is unique per event and the same in every attempt to deliver it:
	// the backend deduplicates on it.
	ID string `json:"id"`
	// Type is one of [Types].
	Type string `json:"type"`
	// Time is when it happened, in Unix milliseconds.
	Time int64 `json:"time"`
	// Data is the event's payload, an object whose fields depend on Type.
	Data json.RawMessage `json:"data"`

	// ref is the queue's handle of the event (a Redis stream entry id).
	ref string
}

// Ref returns the queue's handle of the event, set with [Event.WithRef].
func (e Event) Ref() string { return e.ref }

// WithRef returns e carrying the queue handle ref; queues outside this
// package (package redis) use it.
func (e Event) WithRef(ref string) Event {
	e.ref = ref
	return e
}

// New returns an event of type typ that happened at t, with a fresh id.
func New(typ string, t time.Time, data json.RawMessage) Event {
	return Event{ID: NewID(t), Type: typ, Time: t.UnixMilli(), Data: data}
}

// NewID returns a UUID version 7 for an event at t: 48 bits of Unix
// milliseconds and 74 random bits, so that ids sort by time and never
// repeat.
func NewID(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(t.UnixMilli()) //nolint:gosec // times before 1970 do not happen here
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[:6], ts[2:])
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
