package server

import (
	"context"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/rooms"
)

// The handlers of the client's requests, one per row of protocol.Requests
// but sync (sync.go) and refresh (refresh.go). Each decodes its payload
// (decode.go), checks the room's policy (access.go), applies the chat rules
// through rooms.Chat and delivers the result; handle (socket.go) answers
// the acknowledgement.

func (c *conn) join(ctx context.Context, args []any) (map[string]any, error) {
	room, err := roomRequest(args)
	if err != nil {
		return nil, err
	}
	if err := c.allowJoin(ctx, room, args); err != nil {
		return nil, err
	}
	if err := c.hookJoin(ctx, room); err != nil {
		return nil, err
	}
	if err := c.s.JoinUser(ctx, c.user, room); err != nil {
		return nil, err
	}
	return map[string]any{"room": room}, nil
}

func (c *conn) leave(ctx context.Context, args []any) (map[string]any, error) {
	room, err := roomRequest(args)
	if err != nil {
		return nil, err
	}
	if err := c.s.LeaveUser(ctx, c.user, room); err != nil {
		return nil, err
	}
	return map[string]any{"room": room}, nil
}

func (c *conn) message(ctx context.Context, args []any) (map[string]any, error) {
	in, err := messageRequest(args)
	if err != nil {
		return nil, err
	}
	if err := c.allowPost(in.Room); err != nil {
		return nil, err
	}
	if err := c.hookMessage(ctx, &in); err != nil {
		return nil, err
	}
	msg, fresh, delivered, err := c.s.chat.SendAndDeliver(ctx, c.user, in, c.s.delivery.Deliverer(c.sock.Id()))
	if err != nil {
		return nil, err
	}
	if fresh && !delivered {
		c.s.delivery.Message(msg, c.sock.Id())
	}
	return map[string]any{"message": msg}, nil
}

func (c *conn) typing(args []any) (map[string]any, error) {
	room, typing, err := typingRequest(args)
	if err != nil {
		return nil, err
	}
	// Every socket of a member is in the room, so the socket's own rooms
	// answer the membership question without a store round trip.
	if !c.sock.Rooms().Has(socket.Room(room)) {
		return nil, rooms.Errorf(rooms.CodeForbidden, "join room %q before typing in it", room)
	}
	c.s.metrics.eventsOut.WithLabelValues("typing").Inc()
	_ = c.s.nsp.To(socket.Room(room)).Except(socket.Room(c.sock.Id())).Volatile().Emit("typing", map[string]any{
		"room": room, "userId": c.user.ID, "name": c.user.Name, "typing": typing,
	})
	return nil, nil
}

func (c *conn) history(ctx context.Context, args []any) (map[string]any, error) {
	room, q, err := historyRequest(args)
	if err != nil {
		return nil, err
	}
	if err := c.allowRead(ctx, room, false); err != nil {
		return nil, err
	}
	page, err := c.s.chat.History(ctx, c.user.ID, room, q)
	if err != nil {
		return nil, err
	}
	res := map[string]any{"messages": page.Messages}
	if page.Gap {
		res["gap"] = true
	}
	return res, nil
}

func (c *conn) rooms(ctx context.Context, args []any) (map[string]any, error) {
	if err := roomsRequest(args); err != nil {
		return nil, err
	}
	rs, err := c.s.chat.Rooms(ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"rooms": rs}, nil
}

func (c *conn) presence(ctx context.Context, args []any) (map[string]any, error) {
	room, err := roomRequest(args)
	if err != nil {
		return nil, err
	}
	if err := c.allowRead(ctx, room, true); err != nil {
		return nil, err
	}
	users, err := c.s.chat.Presence(ctx, room)
	if err != nil {
		return nil, err
	}
	return map[string]any{"room": room, "users": users}, nil
}
