package server

import (
	"context"
	"time"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/rooms"
)

// JoinUser makes u a member of room the way a join request does: the
// membership is stored, every socket of the user on every instance is put
// in the room before JoinUser returns, and when the user was not a member
// yet the room hears presence "joined" and the user's tabs hear
// membership "joined". It checks no policy: callers decide who may join.
func (s *Server) JoinUser(ctx context.Context, u rooms.User, room string) error {
	change, err := s.chat.Join(ctx, u, room)
	if err != nil {
		return err
	}
	// Put every socket of the user in the room, on every instance, even
	// when the membership existed: a socket may have missed it. In cluster
	// mode this waits until every instance has done it, so that a message
	// sent after the answer reaches all the user's tabs.
	s.userSocketsJoin(ctx, u.ID, room)
	s.settleUserSockets(ctx, u.ID, room, true)
	if change.Member {
		if change.Room {
			s.publishRoom(events.RoomOccupied, room)
		}
		s.publishMember(events.MemberJoined, room, u)
		s.delivery.Presence(room, u, "joined")
		s.delivery.Membership(u.ID, room, "joined")
	}
	return nil
}

// LeaveUser ends u's membership of room the way a leave request does:
// every socket of the user leaves the room before LeaveUser returns, and
// when the user was a member the room hears presence "left" and the user's
// tabs hear membership "left".
func (s *Server) LeaveUser(ctx context.Context, u rooms.User, room string) error {
	change, err := s.chat.Leave(ctx, u, room)
	if err != nil {
		return err
	}
	// In cluster mode this waits until every instance has done it, so that
	// no message sent after the answer reaches the user's tabs.
	s.userSocketsLeave(ctx, u.ID, room)
	s.settleUserSockets(ctx, u.ID, room, false)
	if change.Member {
		s.publishMember(events.MemberLeft, room, u)
		if change.Room {
			s.publishRoom(events.RoomVacated, room)
		}
		s.delivery.Presence(room, u, "left")
		s.delivery.Membership(u.ID, room, "left")
	}
	return nil
}

// Grant lets userID join room under the granted policy (the server API's
// PUT of a member). A direct room can only be granted to the users its
// name lists: anyone else is forbidden.
func (s *Server) Grant(ctx context.Context, userID, room string) error {
	if policy, _ := s.access.policies.For(room); policy == rooms.PolicyDirect && !s.access.directMember(room, userID) {
		return notDirectMember(room)
	}
	if err := s.access.grants.Grant(ctx, userID, room); err != nil {
		return rooms.Unavailable(err)
	}
	return nil
}

// Revoke takes back userID's grant of room, so that the user can no longer
// join it under the granted policy, and neither can an allowed_rooms claim
// or a join token issued before it admit the user. It does not end a membership: see
// LeaveUser.
func (s *Server) Revoke(ctx context.Context, userID, room string) error {
	if err := s.access.grants.Revoke(ctx, userID, room, time.Now()); err != nil {
		return rooms.Unavailable(err)
	}
	return nil
}

// CutOff records that the server API disconnected userID now, so that no
// session of the user dropped before is resumed by connection state
// recovery.
func (s *Server) CutOff(ctx context.Context, userID string) error {
	if err := s.cutOff(ctx, userID); err != nil {
		return rooms.Unavailable(err)
	}
	return nil
}
