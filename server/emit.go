package server

import (
	"context"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/rooms"
)

// deliver emits a stored message to every socket in its room, on every
// instance, except the socket that sent it (empty for server API sends).
func (s *Server) deliver(msg rooms.Message, except socket.SocketId) {
	op := s.nsp.To(socket.Room(msg.Room))
	if except != "" {
		op = op.Except(socket.Room(except))
	}
	// Counted first: a client that has the event and then reads /metrics
	// finds it counted.
	s.metrics.eventsOut.WithLabelValues("message").Inc()
	if ids, ok := s.nsp.Adapter().Rooms().Load(socket.Room(msg.Room)); ok {
		n := ids.Len()
		if except != "" && ids.Has(except) {
			n--
		}
		s.metrics.fanout.Observe(float64(n))
	}
	_ = op.Emit("message", messagePayload(msg))
}

// messagePayload is msg as the `message` event carries it. A plain map
// (not the struct) travels to other instances without a JSON round trip.
func messagePayload(m rooms.Message) map[string]any {
	p := map[string]any{
		"id": m.ID, "room": m.Room, "userId": m.UserID, "name": m.Name, "text": m.Text, "ts": m.TS,
	}
	if m.ClientMsgID != "" {
		p["clientMsgId"] = m.ClientMsgID
	}
	return p
}

// emitPresence tells the others in room that u joined or left it.
func (s *Server) emitPresence(room string, u rooms.User, event string) {
	s.metrics.eventsOut.WithLabelValues("presence").Inc()
	_ = s.nsp.To(socket.Room(room)).Except(userRoom(u.ID)).Emit("presence", map[string]any{
		"room": room, "userId": u.ID, "name": u.Name, "event": event,
	})
}

// emitMembership tells every socket of a user (every tab, on every
// instance) that the user joined or left room. This is an addition to the
// protocol: `presence` only reaches the others in the room.
func (s *Server) emitMembership(userID, room, event string) {
	s.metrics.eventsOut.WithLabelValues("membership").Inc()
	_ = s.nsp.To(userRoom(userID)).Emit("membership", map[string]any{"room": room, "event": event})
}

// announce tells the others in each of u's rooms that u came online or went
// offline.
func (s *Server) announce(u rooms.User, memberOf []string, event string) {
	for _, room := range memberOf {
		s.emitPresence(room, u, event)
	}
}

// ReapOffline announces the users whose last socket was on an instance that
// stopped without saying goodbye. cmd/chatd calls it periodically.
func (s *Server) ReapOffline(ctx context.Context) {
	gone, err := s.chat.Reap(ctx)
	if err != nil {
		s.log.Warn("presence reap failed", "err", err)
	}
	for u, memberOf := range gone {
		s.announce(u, memberOf, "offline")
	}
}
