package server

import (
	"github.com/chatd/chatd/rooms"
)

// joinableRooms drops from a user's stored rooms the names that are no
// longer valid room names (such as one of the shape of a socket id, stored
// before those were reserved): a socket put in such a room would receive
// what is sent to another socket.
func joinableRooms(names []string) []string {
	out := names[:0:0]
	for _, r := range names {
		if rooms.ValidateRoom(r) == nil {
			out = append(out, r)
		}
	}
	if len(out) == len(names) {
		return names
	}
	return out
}
