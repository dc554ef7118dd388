package server

import (
	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/rooms"
)

// The events for the application's backend (package events) start here,
// each where the change it reports is decided once for the whole cluster:
// message.created when a message is stored (Delivery.Message, for socket
// and server API sends alike), member.joined and member.left when the stored
// membership changes (JoinUser, LeaveUser), room.occupied and room.vacated
// with them when the store reports the room's first or last member,
// user.online and user.offline when presence reports a user's first or last
// socket anywhere, and user.offline for the users of a crashed instance
// when this instance's reap removed their sockets (ReapOffline).

// The reasons of a user.offline event.
const (
	// offlineDisconnected: the user's last socket disconnected.
	offlineDisconnected = "disconnected"
	// offlineInstanceLost: the instance that held the user's last socket
	// stopped without saying goodbye (crashed, or cut off from Redis).
	offlineInstanceLost = "instance_lost"
)

// publishMessage publishes message.created for a stored message; fromSocket
// tells a socket's send from a server API post.
func (d *Delivery) publishMessage(m rooms.Message, fromSocket bool) {
	p := messagePayload(m)
	p["source"] = "api"
	if fromSocket {
		p["source"] = "socket"
	}
	d.events.Publish(events.MessageCreated, p)
}

// publishMember publishes member.joined or member.left.
func (s *Server) publishMember(typ, room string, u rooms.User) {
	s.events.Publish(typ, map[string]any{"room": room, "userId": u.ID, "name": u.Name})
}

// publishRoom publishes room.occupied or room.vacated.
func (s *Server) publishRoom(typ, room string) {
	s.events.Publish(typ, map[string]any{"room": room})
}

// publishUser publishes user.online, or user.offline with its reason.
func (s *Server) publishUser(typ string, u rooms.User, reason string) {
	p := map[string]any{"userId": u.ID, "name": u.Name}
	if reason != "" {
		p["reason"] = reason
	}
	s.events.Publish(typ, p)
}
