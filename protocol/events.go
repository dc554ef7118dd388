package protocol

import "strings"

// Event names of the socket protocol. Some names are both a request (from
// the client) and a server event: "message", "typing" and "presence".
const (
	EventJoin       = "join"
	EventLeave      = "leave"
	EventMessage    = "message"
	EventTyping     = "typing"
	EventHistory    = "history"
	EventRooms      = "rooms"
	EventPresence   = "presence"
	EventRefresh    = "refresh"
	EventSync       = "sync"
	EventRPC        = "rpc"
	EventSession    = "session"
	EventMembership = "membership"
)

// Request is one event a client may send. Every request may carry an
// acknowledgement callback; the server answers it with {ok: true, ...} or
// {ok: false, error: {code, message}}.
type Request struct {
	// Name is the event name.
	Name string
	// Effect says in a few words what the request does.
	Effect string
}

// Requests is the table of the client's request events, in the order of the
// protocol document. The server dispatches exactly these; any other event
// is answered with bad_request.
var Requests = []Request{
	{Name: EventJoin, Effect: "makes the user a member of a room, on every tab"},
	{Name: EventLeave, Effect: "ends the user's membership of a room, on every tab"},
	{Name: EventMessage, Effect: "stores a chat message and delivers it to the room"},
	{Name: EventTyping, Effect: "tells the room's other sockets that the user is typing"},
	{Name: EventHistory, Effect: "answers a page of a room's stored messages"},
	{Name: EventSync, Effect: "answers what each of several rooms missed, in one request"},
	{Name: EventRooms, Effect: "answers the rooms the user belongs to"},
	{Name: EventPresence, Effect: "answers a room's members with a connected socket"},
	{Name: EventRefresh, Effect: "replaces the socket's token before it expires"},
	{Name: EventRPC, Effect: "asks the application's backend and answers what it said"},
}

// ServerEvents are the events the server sends to clients.
var ServerEvents = []string{EventSession, EventMessage, EventTyping, EventPresence, EventMembership}

// SocketIOEvents are the event names socket.io reserves for itself.
var SocketIOEvents = []string{
	"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
}

var requestNames = func() map[string]bool {
	m := make(map[string]bool, len(Requests))
	for _, r := range Requests {
		m[r.Name] = true
	}
	return m
}()

// IsRequest reports whether name is one of the request events.
func IsRequest(name string) bool { return requestNames[name] }

// RequestNames returns the names of the request events, in table order.
func RequestNames() []string {
	out := make([]string, len(Requests))
	for i, r := range Requests {
		out[i] = r.Name
	}
	return out
}

// RequestList names the request events as a sentence does: "join, leave,
// ... and presence".
func RequestList() string {
	names := RequestNames()
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// ChatEvents are the names of the chat protocol that no backend may emit as
// a custom event (the server API's emit, @connections' gateway event): the
// request events and "session". "membership" is not among them: it was
// added to the protocol after the server API, and reserving it would refuse
// custom events that backends may send today; nor is "rpc", for the same
// reason.
func ChatEvents() []string {
	out := []string{EventSession}
	for _, name := range RequestNames() {
		if name != EventRPC {
			out = append(out, name)
		}
	}
	return out
}

// IsChatEvent reports whether name is one of [ChatEvents].
func IsChatEvent(name string) bool {
	return name == EventSession || (IsRequest(name) && name != EventRPC)
}

// IsSocketIOEvent reports whether socket.io reserves name.
func IsSocketIOEvent(name string) bool {
	for _, e := range SocketIOEvents {
		if e == name {
			return true
		}
	}
	return false
}

// ReservedEvents are every event name a custom event may not take:
// socket.io's and the chat protocol's.
func ReservedEvents() []string {
	return append(append([]string{}, SocketIOEvents...), ChatEvents()...)
}
