package server

import (
	"context"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// MembershipSync is implemented by adapters that spread a namespace over
// several instances (the cluster adapter) and can apply a socketsJoin or
// socketsLeave on every instance and wait for it. Without it, a join or leave
// reaches the other instances some time after its acknowledgement, so a
// message sent right after could miss a tab that joined, or reach one that
// left. The in-memory adapter does not need it: on a single instance the
// change is done when SocketsJoin returns.
type MembershipSync interface {
	// AddSocketsWait makes the sockets matching opts, on every instance,
	// join rooms, and returns once every instance has done so and can
	// receive the rooms' broadcasts.
	AddSocketsWait(ctx context.Context, opts *socket.BroadcastOptions, rooms []socket.Room) error
	// DelSocketsWait makes the sockets matching opts, on every instance,
	// leave rooms, and returns once every instance has done so.
	DelSocketsWait(ctx context.Context, opts *socket.BroadcastOptions, rooms []socket.Room) error
	// WaitSubscribed returns once this instance receives the broadcasts
	// that other instances send to rooms (those with a local socket).
	WaitSubscribed(ctx context.Context, rooms []socket.Room) error
}

// userSocketsJoin puts every socket of a user, on every instance, in room.
// With a MembershipSync adapter it returns once that is done everywhere; a
// failure (an instance that did not answer in time) is logged and not
// returned: the membership is stored already, the instances that did answer
// have applied it, and the others apply it when the request reaches them or
// put the user's sockets in the room when they reconnect. Refusing the join
// would tell the client the opposite of what is stored.
func (s *Server) userSocketsJoin(ctx context.Context, userID, room string) {
	ms, ok := s.nsp.Adapter().(MembershipSync)
	if !ok {
		s.nsp.In(userRoom(userID)).SocketsJoin(socket.Room(room))
		return
	}
	opts := &socket.BroadcastOptions{Rooms: types.NewSet(userRoom(userID))}
	if err := ms.AddSocketsWait(ctx, opts, []socket.Room{socket.Room(room)}); err != nil {
		s.log.Warn("join not confirmed by every instance; answering ok since the membership is stored", "user", userID, "room", room, "err", err)
	}
}

// userSocketsLeave takes every socket of a user, on every instance, out of
// room; failures are handled as in userSocketsJoin.
func (s *Server) userSocketsLeave(ctx context.Context, userID, room string) {
	ms, ok := s.nsp.Adapter().(MembershipSync)
	if !ok {
		s.nsp.In(userRoom(userID)).SocketsLeave(socket.Room(room))
		return
	}
	opts := &socket.BroadcastOptions{Rooms: types.NewSet(userRoom(userID))}
	if err := ms.DelSocketsWait(ctx, opts, []socket.Room{socket.Room(room)}); err != nil {
		s.log.Warn("leave not confirmed by every instance; answering ok since the membership is removed", "user", userID, "room", room, "err", err)
	}
}

// settleUserSockets makes the user's sockets agree with the store after a
// join (joined) or a leave of room. A join and a leave of the same user
// from two tabs can interleave so that the store ends with one and the
// sockets with the other: each changes the store, then the sockets, and
// the second store change can come between the first's two steps. Reading
// the store after the socket change and undoing that change when the store
// says otherwise makes the last store change win: whichever request
// changes the sockets last reads a store that already has it.
func (s *Server) settleUserSockets(ctx context.Context, userID, room string, joined bool) {
	member, err := s.chat.IsMember(ctx, userID, room)
	if err != nil {
		s.log.Warn("membership not checked again after changing the user's sockets", "user", userID, "room", room, "err", err)
		return
	}
	switch {
	case joined && !member:
		s.userSocketsLeave(ctx, userID, room)
	case !joined && member:
		s.userSocketsJoin(ctx, userID, room)
	}
}

// waitRoomsReady returns once the rooms sock is in receive the broadcasts of
// the other instances, or ctx ends (then it logs and the session starts
// anyway: the subscriptions complete in the background).
func (s *Server) waitRoomsReady(ctx context.Context, sock *socket.Socket) {
	ms, ok := s.nsp.Adapter().(MembershipSync)
	if !ok {
		return
	}
	if err := ms.WaitSubscribed(ctx, sock.Rooms().Keys()); err != nil {
		s.log.Warn("room subscriptions not confirmed before the session started", "socket", string(sock.Id()), "err", err)
	}
}
