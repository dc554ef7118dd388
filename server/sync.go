package server

import (
	"context"

	"github.com/chatd/chatd/rooms"
)

// notAnID stands for a last id that is not a message id.
const notAnID = "-"

// syncRequest decodes {rooms: {<room>: <last id seen or null>}, limit?}.
// A value that is not a message id or null becomes notAnID, so that its
// room alone answers bad_request.
func syncRequest(args []any) (rooms.SyncQuery, error) {
	p, err := decodePayload(args)
	if err != nil {
		return rooms.SyncQuery{}, err
	}
	raw, ok := p["rooms"].(map[string]any)
	if !ok {
		return rooms.SyncQuery{}, rooms.Errorf(rooms.CodeBadRequest,
			"rooms is required: an object of each room and the last message id seen in it (or null), such as {\"rooms\": {\"general\": \"1700000000000-0\"}}")
	}
	var q rooms.SyncQuery
	if q.Limit, err = p.integer("limit"); err != nil {
		return q, err
	}
	q.Rooms = make(map[string]string, len(raw))
	for room, v := range raw {
		switch id := v.(type) {
		case nil:
			q.Rooms[room] = ""
		case string:
			q.Rooms[room] = id
			if id == "" {
				q.Rooms[room] = notAnID
			}
		default:
			q.Rooms[room] = notAnID
		}
	}
	return q, nil
}

// sync answers a client's catch-up after a reconnect in one request: what
// each of its rooms missed since the last message it saw.
func (c *conn) sync(ctx context.Context, args []any) (map[string]any, error) {
	q, err := syncRequest(args)
	if err != nil {
		return nil, err
	}
	got, err := c.s.chat.Sync(ctx, c.user.ID, q)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(got))
	for room, r := range got {
		if r.Err != nil {
			out[room] = map[string]any{"error": map[string]any{"code": string(r.Err.Code), "message": r.Err.Message}}
			continue
		}
		part := map[string]any{"messages": r.Messages}
		if r.Gap {
			part["gap"] = true
		}
		if r.More {
			part["more"] = true
		}
		out[room] = part
	}
	return map[string]any{"rooms": out}, nil
}
