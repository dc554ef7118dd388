package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/protocol"
	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// Config configures the server API (/api/v1 and the API Gateway
// compatible @connections routes). cmd/chatd fills it from package config;
// zero values get defaults in [New].
type Config struct {
	// Token is the bearer token; empty disables /api/v1.
	Token string
	// GatewayEvent is the event name @connections posts are emitted as.
	GatewayEvent string
	// AWSAccessKeyID and AWSSecretAccessKey enable SigV4-signed requests on
	// the @connections routes.
	AWSAccessKeyID     string
	AWSSecretAccessKey string
	// Rate is the sustained request rate per token, in requests per second;
	// Burst is how many may come at once.
	Rate  float64
	Burst int
	// RequestTimeout bounds the storage work and the cluster lookups of one
	// request, in time; the server's socket requests have the same bound.
	// Default 5 seconds.
	RequestTimeout time.Duration
}

// API defaults, used when Config leaves them zero.
const (
	defaultGatewayEvent   = "push"
	defaultAPIRate        = 100
	defaultAPIBurst       = 200
	defaultRequestTimeout = 5 * time.Second
)

// maxAPIBody is the largest request body of the server API, in bytes.
const maxAPIBody = 1 << 20

// maxEmitTargets is the longest rooms, users or sockets list of one emit.
const maxEmitTargets = 1000

// v1Handler answers one /api/v1 request that passed authentication and the
// rate limit: a status and a value to encode as JSON (nil for no body), or
// an error, shown to the caller through rooms.ErrorOf.
type v1Handler func(r *http.Request) (int, any, error)

// route is one method and path the server API serves.
type route struct {
	method  string
	path    string // a ServeMux pattern path
	v1      v1Handler
	gateway gatewayHandler
	// staged routes are served by serveStagedGateway, ahead of the mux.
	staged bool
}

// pattern is the route's ServeMux pattern, also its metrics label.
func (rt route) pattern() string { return rt.method + " " + rt.path }

// table lists every route of the server API, in the order of
// api/openapi.yaml.
func (a *Handler) table() []route {
	return []route{
		{method: http.MethodPost, path: "/api/v1/rooms/{room}/messages", v1: a.postMessage},
		{method: http.MethodGet, path: "/api/v1/rooms/{room}/messages", v1: a.getMessages},
		{method: http.MethodGet, path: "/api/v1/rooms/{room}/presence", v1: a.getPresence},
		{method: http.MethodGet, path: "/api/v1/rooms/{room}/members", v1: a.getMembers},
		{method: http.MethodPut, path: "/api/v1/rooms/{room}/members/{userId}", v1: a.putMember},
		{method: http.MethodDelete, path: "/api/v1/rooms/{room}/members/{userId}", v1: a.deleteMember},
		{method: http.MethodGet, path: "/api/v1/users/{userId}/rooms", v1: a.getUserRooms},
		{method: http.MethodPost, path: "/api/v1/emit", v1: a.emit},
		{method: http.MethodGet, path: "/api/v1/connections/{socketId}", v1: a.getConnection},
		{method: http.MethodDelete, path: "/api/v1/connections/{socketId}", v1: a.deleteConnection},
		{method: http.MethodDelete, path: "/api/v1/users/{userId}/connections", v1: a.deleteUserConnections},
		{method: http.MethodPost, path: "/@connections/{socketId}", gateway: a.gatewayPost},
		{method: http.MethodGet, path: "/@connections/{socketId}", gateway: a.gatewayGet},
		{method: http.MethodDelete, path: "/@connections/{socketId}", gateway: a.gatewayDelete},
		{method: http.MethodPost, path: "/{stage}/@connections/{socketId}", gateway: a.gatewayPost, staged: true},
		{method: http.MethodGet, path: "/{stage}/@connections/{socketId}", gateway: a.gatewayGet, staged: true},
		{method: http.MethodDelete, path: "/{stage}/@connections/{socketId}", gateway: a.gatewayDelete, staged: true},
	}
}

// apiRoutes lists the "METHOD /path" of every route the server API serves,
// sorted; api/openapi.yaml must describe exactly these.
func apiRoutes() []string {
	var out []string
	for _, rt := range (&Handler{}).table() {
		out = append(out, rt.pattern())
	}
	sort.Strings(out)
	return out
}

// v1Methods are the methods the /api/v1 fallback answers with a JSON 404 or
// 405, so that every error of /api/v1 has the JSON error body.
var v1Methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (a *Handler) routes(mux *http.ServeMux) {
	for _, rt := range a.table() {
		switch {
		case rt.staged:
			// A wildcard first segment conflicts with "/socket.io/" in a
			// ServeMux; serveStagedGateway matches these paths itself.
		case rt.v1 != nil:
			mux.Handle(rt.pattern(), a.serveV1(rt.pattern(), rt.v1))
		default:
			mux.Handle(rt.pattern(), a.serveGateway(rt.pattern(), rt.gateway))
		}
	}
	// Methods are spelled out (not "/api/v1/") so that these patterns
	// cannot conflict with a method-specific catch-all such as "GET /".
	for _, m := range v1Methods {
		mux.Handle(m+" /api/v1/", a.serveV1("unmatched", a.unmatched))
	}
}

// unmatched answers an /api/v1 path that no route serves: 405 when another
// method would have been served, else 404.
func (a *Handler) unmatched(r *http.Request) (int, any, error) {
	var allow []string
	for _, rt := range a.table() {
		if rt.v1 != nil && pathMatches(rt.path, r.URL.EscapedPath()) {
			allow = append(allow, rt.method)
		}
	}
	if len(allow) > 0 {
		return 0, nil, &statusError{
			status: http.StatusMethodNotAllowed,
			header: http.Header{"Allow": {strings.Join(allow, ", ")}},
			err:    rooms.Errorf(rooms.CodeBadRequest, "%s is not served at %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")),
		}
	}
	return 0, nil, rooms.Errorf(rooms.CodeNotFound, "no route %s %s; the server API is described at api/openapi.yaml", r.Method, r.URL.Path)
}

// pathMatches reports whether an escaped path has the shape of a route
// path, where a {wildcard} matches any one non-empty segment.
func pathMatches(pattern, path string) bool {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if p != xs[i] {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- routes

// postMessage stores a message as a member's would be and delivers it.
func (a *Handler) postMessage(r *http.Request) (int, any, error) {
	room := r.PathValue("room")
	if err := rooms.ValidateRoom(room); err != nil {
		return 0, nil, err
	}
	body, err := readJSONObject(r, "text", "userId", "name", "clientMsgId")
	if err != nil {
		return 0, nil, err
	}
	text, present, err := body.str("text")
	if err != nil {
		return 0, nil, err
	}
	if !present {
		return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "text is required")
	}
	u := rooms.User{ID: "system"}
	if id, present, err := body.str("userId"); err != nil {
		return 0, nil, err
	} else if present {
		if id == "" {
			return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "userId must not be empty; leave it out to send as \"system\"")
		}
		if err := rooms.ValidateUserID(id); err != nil {
			return 0, nil, err
		}
		u.ID = id
	}
	name, _, err := body.str("name")
	if err != nil {
		return 0, nil, err
	}
	if u.Name, err = server.DisplayName(name, u.ID); err != nil {
		return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "%s", err.Error())
	}
	clientMsgID, present, err := body.str("clientMsgId")
	if err != nil {
		return 0, nil, err
	}
	if present && clientMsgID == "" {
		return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "clientMsgId must be 1 to %d characters", rooms.MaxClientMsgIDLength)
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	msg, fresh, delivered, err := a.chat.PostAndDeliver(ctx, u, rooms.Send{Room: room, Text: text, ClientMsgID: clientMsgID}, a.delivery.Deliverer(""))
	if err != nil {
		return 0, nil, err
	}
	if fresh && !delivered {
		a.delivery.Message(msg, "")
	}
	return http.StatusCreated, map[string]any{"message": msg}, nil
}

// getMessages answers a page of a room's history, as the history request.
func (a *Handler) getMessages(r *http.Request) (int, any, error) {
	room := r.PathValue("room")
	if err := rooms.ValidateRoom(room); err != nil {
		return 0, nil, err
	}
	q, err := historyQuery(r)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	page, err := a.chat.RoomHistory(ctx, room, q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// roomTarget reads the {room} of a route that takes no query.
func roomTarget(r *http.Request) (string, error) {
	room := r.PathValue("room")
	if err := rooms.ValidateRoom(room); err != nil {
		return "", err
	}
	return room, noQuery(r)
}

// getPresence lists a room's members with a connected socket.
func (a *Handler) getPresence(r *http.Request) (int, any, error) {
	room, err := roomTarget(r)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	users, err := a.chat.Presence(ctx, room)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"room": room, "users": users}, nil
}

// emit sends a custom event to rooms, users and sockets, each socket once.
func (a *Handler) emit(r *http.Request) (int, any, error) {
	body, err := readJSONObject(r, "event", "data", "rooms", "users", "sockets")
	if err != nil {
		return 0, nil, err
	}
	event, present, err := body.str("event")
	if err != nil {
		return 0, nil, err
	}
	if !present || event == "" {
		return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "event is required, such as \"notice\"")
	}
	if err := validateEventName(event); err != nil {
		return 0, nil, err
	}
	data, present, err := body.value("data")
	if err != nil {
		return 0, nil, err
	}
	if !present {
		return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "data is required (any JSON value; null for none)")
	}
	var targets []socket.Room
	roomList, err := body.strList("rooms")
	if err != nil {
		return 0, nil, err
	}
	for _, room := range roomList {
		if err := rooms.ValidateRoom(room); err != nil {
			return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "rooms: %q: %s", truncate(room, 64), rooms.ErrorOf(err).Message)
		}
		targets = append(targets, socket.Room(room))
	}
	users, err := body.strList("users")
	if err != nil {
		return 0, nil, err
	}
	for _, id := range users {
		if err := rooms.ValidateUserID(id); err != nil {
			return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "users: %q: %s", truncate(id, 64), rooms.ErrorOf(err).Message)
		}
		targets = append(targets, server.UserRoom(id))
	}
	sockets, err := body.strList("sockets")
	if err != nil {
		return 0, nil, err
	}
	for _, id := range sockets {
		if !validSocketID(id) {
			return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "sockets: %q is not a socket id", truncate(id, 64))
		}
		targets = append(targets, socket.Room(id))
	}
	if len(targets) == 0 {
		// An empty target list would reach every socket.
		return 0, nil, rooms.Errorf(rooms.CodeBadRequest, "give at least one of rooms, users or sockets, as a non-empty list")
	}
	if err := a.delivery.Emit(targets, event, data); err != nil {
		return 0, nil, &rooms.Error{Code: rooms.CodeBadRequest, Message: fmt.Sprintf("event %q cannot be emitted; choose another name", event), Err: err}
	}
	return http.StatusAccepted, map[string]any{"ok": true}, nil
}

// liveSocket finds the socket named by the request's {socketId}, wherever
// it is connected; not_found when none is.
func (a *Handler) liveSocket(r *http.Request) (*socket.RemoteSocket, error) {
	id := r.PathValue("socketId")
	if !validSocketID(id) {
		return nil, rooms.Errorf(rooms.CodeNotFound, "no connected socket %q", truncate(id, 64))
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	sock, err := a.delivery.FindSocket(ctx, id)
	if err != nil {
		return nil, err
	}
	if sock == nil {
		return nil, rooms.Errorf(rooms.CodeNotFound, "no connected socket %q", id)
	}
	return sock, nil
}

// getConnection describes a live socket anywhere in the cluster.
func (a *Handler) getConnection(r *http.Request) (int, any, error) {
	sock, err := a.liveSocket(r)
	if err != nil {
		return 0, nil, err
	}
	u, at, _ := server.SocketUser(sock)
	return http.StatusOK, map[string]any{
		"socketId":    string(sock.Id()),
		"userId":      u.ID,
		"name":        u.Name,
		"rooms":       chatRooms(sock),
		"connectedAt": at,
	}, nil
}

// deleteConnection disconnects one socket, wherever it is connected.
func (a *Handler) deleteConnection(r *http.Request) (int, any, error) {
	sock, err := a.liveSocket(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.cutOffSocketUser(r, sock); err != nil {
		return 0, nil, err
	}
	a.delivery.Disconnect(socket.Room(sock.Id()))
	return http.StatusNoContent, nil, nil
}

// deleteUserConnections disconnects every socket of a user, on every
// instance; a user without sockets is not an error.
func (a *Handler) deleteUserConnections(r *http.Request) (int, any, error) {
	id := r.PathValue("userId")
	if err := rooms.ValidateUserID(id); err != nil {
		return 0, nil, err
	}
	if err := a.cutOffUser(r, id); err != nil {
		return 0, nil, err
	}
	a.delivery.Disconnect(server.UserRoom(id))
	return http.StatusNoContent, nil, nil
}

// ---------------------------------------------------------------- helpers

// requestContext bounds the storage work of one request.
func (a *Handler) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
}

// maxEventName is the longest custom event name, in bytes.
const maxEventName = 64

func validateEventName(ev string) error {
	switch {
	case protocol.IsChatEvent(ev):
		return rooms.Errorf(rooms.CodeBadRequest, "event %q belongs to the chat protocol; choose another name, such as \"notice\"", ev)
	case protocol.IsSocketIOEvent(ev):
		return rooms.Errorf(rooms.CodeBadRequest, "event %q is reserved by socket.io; choose another name, such as \"notice\"", ev)
	case len(ev) > maxEventName:
		return rooms.Errorf(rooms.CodeBadRequest, "event must be at most %d bytes", maxEventName)
	}
	for _, r := range ev {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return rooms.Errorf(rooms.CodeBadRequest, "event must be UTF-8 text without control characters")
		}
	}
	return nil
}

// validSocketID reports whether id has the shape of a socket.io socket id
// (rooms.IsSocketID), which no chat room or internal room may have: the
// room it names holds that socket and no other.
func validSocketID(id string) bool {
	return rooms.IsSocketID(id)
}

// chatRooms lists a socket's chat rooms, sorted: its rooms without its own
// id room and user rooms.
func chatRooms(sock *socket.RemoteSocket) []string {
	out := []string{}
	if sock.Rooms() == nil {
		return out
	}
	for _, r := range sock.Rooms().Keys() {
		if string(r) == string(sock.Id()) || strings.HasPrefix(string(r), rooms.UserRoomPrefix) {
			continue
		}
		out = append(out, string(r))
	}
	sort.Strings(out)
	return out
}
