package api

import (
	"net/http"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// memberTarget reads the {room} and {userId} of a members route.
func memberTarget(r *http.Request) (string, rooms.User, error) {
	room := r.PathValue("room")
	if err := rooms.ValidateRoom(room); err != nil {
		return "", rooms.User{}, err
	}
	id := r.PathValue("userId")
	if err := rooms.ValidateUserID(id); err != nil {
		return "", rooms.User{}, err
	}
	if err := noQuery(r); err != nil {
		return "", rooms.User{}, err
	}
	return room, rooms.User{ID: id, Name: id}, nil
}

// putMember grants a user a room and makes the user a member: every socket
// of the user, on every instance, joins it before the answer.
func (a *Handler) putMember(r *http.Request) (int, any, error) {
	room, u, err := memberTarget(r)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	if err := a.members.Grant(ctx, u.ID, room); err != nil {
		return 0, nil, err
	}
	u.Name = a.onlineName(r, room, u)
	if err := a.members.JoinUser(ctx, u, room); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// deleteMember revokes a user's grant of a room and ends the membership:
// every socket of the user leaves it before the answer.
func (a *Handler) deleteMember(r *http.Request) (int, any, error) {
	room, u, err := memberTarget(r)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	if err := a.members.Revoke(ctx, u.ID, room); err != nil {
		return 0, nil, err
	}
	u.Name = a.onlineName(r, room, u)
	if err := a.members.LeaveUser(ctx, u, room); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// onlineName is the display name of a member that is online, else its id.
func (a *Handler) onlineName(r *http.Request, room string, u rooms.User) string {
	ctx, cancel := a.requestContext(r)
	defer cancel()
	members, err := a.chat.Members(ctx, room)
	if err != nil {
		return u.ID
	}
	for _, m := range members {
		if m.ID == u.ID && m.Name != "" {
			return m.Name
		}
	}
	return u.ID
}

// getMembers lists a room's members, with the names of those online.
func (a *Handler) getMembers(r *http.Request) (int, any, error) {
	room, err := roomTarget(r)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	members, err := a.chat.Members(ctx, room)
	if err != nil {
		return 0, nil, err
	}
	out := make([]map[string]any, 0, len(members))
	for _, m := range members {
		e := map[string]any{"userId": m.ID}
		if m.Name != "" {
			e["name"] = m.Name
		}
		out = append(out, e)
	}
	return http.StatusOK, map[string]any{"members": out}, nil
}

// getUserRooms lists the rooms a user belongs to.
func (a *Handler) getUserRooms(r *http.Request) (int, any, error) {
	id := r.PathValue("userId")
	if err := rooms.ValidateUserID(id); err != nil {
		return 0, nil, err
	}
	if err := noQuery(r); err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	rs, err := a.chat.Rooms(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"rooms": rs}, nil
}

// cutOffUser records an API disconnect of a user, so that no session of
// the user dropped before is resumed by connection state recovery.
func (a *Handler) cutOffUser(r *http.Request, userID string) error {
	ctx, cancel := a.requestContext(r)
	defer cancel()
	return a.members.CutOff(ctx, userID)
}

// cutOffSocketUser is cutOffUser for the user of a socket.
func (a *Handler) cutOffSocketUser(r *http.Request, sock *socket.RemoteSocket) error {
	u, _, ok := server.SocketUser(sock)
	if !ok {
		return nil
	}
	return a.cutOffUser(r, u.ID)
}
