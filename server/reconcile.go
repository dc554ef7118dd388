package server

import (
	"context"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// ReconcileMembership brings this instance's sockets back into agreement
// with the stored membership, after the store lost data (a Redis restarted
// without persistence): a socket still in a socket.io room whose
// membership is gone would keep receiving a room it can no longer send to.
// Each such socket leaves the room and gets a `membership` event
// {room, event: "left"}, as when its user leaves from another tab. It
// returns how many (socket, room) pairs it undid. A user whose rooms
// cannot be read is left as it is (and logged); the next check tries again.
func (s *Server) ReconcileMembership(ctx context.Context) int {
	type entry struct {
		sock *socket.Socket
		user string
	}
	var socks []entry
	s.nsp.Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		if u, _, ok := socketUser(sock.Data()); ok {
			socks = append(socks, entry{sock, u.ID})
		}
		return true
	})
	stored := make(map[string]map[string]bool)
	undone := 0
	for _, e := range socks {
		mine, ok := stored[e.user]
		if !ok {
			rs, err := s.chat.Rooms(ctx, e.user)
			if err != nil {
				s.logFailure("membership not reconciled", "user", e.user, "err", err)
				stored[e.user] = nil
				continue
			}
			mine = make(map[string]bool, len(rs))
			for _, r := range rs {
				mine[r] = true
			}
			stored[e.user] = mine
		}
		if mine == nil {
			continue
		}
		for _, r := range e.sock.Rooms().Keys() {
			if r == socket.Room(e.sock.Id()) || r == userRoom(e.user) || mine[string(r)] {
				continue
			}
			e.sock.Leave(r)
			undone++
			s.metrics.eventsOut.WithLabelValues("membership").Inc()
			_ = e.sock.Emit("membership", map[string]any{"room": string(r), "event": "left"})
		}
	}
	return undone
}
