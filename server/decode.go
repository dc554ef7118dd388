package server

import (
	"math"

	"github.com/chatd/chatd/rooms"
)

// payload is the single object argument of a client request, as the
// socket.io parser decoded it from JSON.
type payload map[string]any

// decodePayload returns the request object of an event's arguments (the
// event name already removed, an ack callback too). Anything but one JSON
// object is a bad request.
func decodePayload(args []any) (payload, error) {
	if len(args) == 0 {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "the request needs one object argument, such as {\"room\": \"general\"}")
	}
	m, ok := args[0].(map[string]any)
	if !ok {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "the request's argument must be an object, such as {\"room\": \"general\"}")
	}
	return payload(m), nil
}

// str returns the string field key. A missing field is "" when optional and a
// bad request when required; any other type is a bad request.
func (p payload) str(key string, required bool) (string, error) {
	v, ok := p[key]
	if !ok || v == nil {
		if required {
			return "", rooms.Errorf(rooms.CodeBadRequest, "%s is required", key)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", rooms.Errorf(rooms.CodeBadRequest, "%s must be a string", key)
	}
	if required && s == "" {
		return "", rooms.Errorf(rooms.CodeBadRequest, "%s must not be empty", key)
	}
	return s, nil
}

// cursor returns the optional message-id field key: absent (or null) is no
// cursor, while an empty string is not an id.
func (p payload) cursor(key string) (string, error) {
	s, err := p.str(key, false)
	if err != nil {
		return "", err
	}
	if v, present := p[key]; present && v != nil && s == "" {
		return "", rooms.Errorf(rooms.CodeBadRequest, "%s must be a message id such as \"1700000000000-0\"", key)
	}
	return s, nil
}

// boolean returns the boolean field key, which is required.
func (p payload) boolean(key string) (bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return false, rooms.Errorf(rooms.CodeBadRequest, "%s is required", key)
	}
	b, ok := v.(bool)
	if !ok {
		return false, rooms.Errorf(rooms.CodeBadRequest, "%s must be true or false", key)
	}
	return b, nil
}

// integer returns the optional whole-number field key, 0 when missing.
func (p payload) integer(key string) (int, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return 0, nil
	}
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	default:
		return 0, rooms.Errorf(rooms.CodeBadRequest, "%s must be a whole number", key)
	}
	if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return 0, rooms.Errorf(rooms.CodeBadRequest, "%s must be a whole number", key)
	}
	if f == 0 {
		// An explicit 0 is out of range, not "use the default".
		return -1, nil
	}
	return int(f), nil
}

// roomRequest decodes {room}.
func roomRequest(args []any) (string, error) {
	p, err := decodePayload(args)
	if err != nil {
		return "", err
	}
	// The name is checked by rooms, which every room request reaches.
	return p.str("room", true)
}

// messageRequest decodes {room, text, clientMsgId?}.
func messageRequest(args []any) (rooms.Send, error) {
	p, err := decodePayload(args)
	if err != nil {
		return rooms.Send{}, err
	}
	var s rooms.Send
	if s.Room, err = p.str("room", true); err != nil {
		return s, err
	}
	if s.Text, err = p.str("text", false); err != nil {
		return s, err
	}
	if s.ClientMsgID, err = p.str("clientMsgId", false); err != nil {
		return s, err
	}
	if _, present := p["clientMsgId"]; present && s.ClientMsgID == "" {
		return s, rooms.Errorf(rooms.CodeBadRequest, "clientMsgId must be 1 to %d characters", rooms.MaxClientMsgIDLength)
	}
	return s, nil
}

// typingRequest decodes {room, typing}.
func typingRequest(args []any) (room string, typing bool, err error) {
	p, err := decodePayload(args)
	if err != nil {
		return "", false, err
	}
	if room, err = p.str("room", true); err != nil {
		return "", false, err
	}
	if err = rooms.ValidateRoom(room); err != nil {
		return "", false, err
	}
	typing, err = p.boolean("typing")
	return room, typing, err
}

// historyRequest decodes {room, before?, after?, limit?}.
func historyRequest(args []any) (string, rooms.Query, error) {
	p, err := decodePayload(args)
	if err != nil {
		return "", rooms.Query{}, err
	}
	var q rooms.Query
	room, err := p.str("room", true)
	if err != nil {
		return "", q, err
	}
	if q.Before, err = p.cursor("before"); err != nil {
		return "", q, err
	}
	if q.After, err = p.cursor("after"); err != nil {
		return "", q, err
	}
	if q.Limit, err = p.integer("limit"); err != nil {
		return "", q, err
	}
	if err := rooms.ValidateRoom(room); err != nil {
		return "", q, err
	}
	return room, q, q.Validate()
}

// roomsRequest accepts {}. A request with no object at all (no argument,
// null) is a bad request, as for every other request.
func roomsRequest(args []any) error {
	if len(args) == 0 {
		return rooms.Errorf(rooms.CodeBadRequest, "the request needs one object argument: {}")
	}
	if _, ok := args[0].(map[string]any); !ok {
		return rooms.Errorf(rooms.CodeBadRequest, "the request's argument must be an object, such as {}")
	}
	return nil
}
