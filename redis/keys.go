package redis

import "github.com/chatd/chatd/internal/redistag"

// roomKey is the key of one of room's structures, kind, under prefix:
// "<prefix>:{r:<room>}:<kind>". Every key the message path touches for a room
// carries the room's hash tag, so that one script on the room's Redis
// Cluster slot can check the sender's membership, look up and record the
// clientMsgId and append the message. Room names have no braces (see
// rooms.ValidateRoom), so the tag is the whole "{r:<room>}" and the part
// after it tells the kinds apart.
func roomKey(prefix, room, kind string) string {
	return prefix + ":" + redistag.Room(room) + ":" + kind
}

// userKey is the key of one of userID's structures, kind, under prefix:
// "<prefix>:{u:<userId>}:<kind>". A user id may hold a '}', which ends the
// tag early but at the same place in each of the user's keys: they still
// share one slot. The kind at the end keeps the keys of different users
// apart.
func userKey(prefix, userID, kind string) string {
	return prefix + ":{u:" + userID + "}:" + kind
}
