package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/rooms"
)

// APIConfig configures the server API (/api/v1 and the API Gateway
// compatible @connections routes).
type APIConfig struct {
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
}

// API defaults, used when APIConfig leaves them zero.
const (
	defaultGatewayEvent = "push"
	defaultAPIRate      = 100
	defaultAPIBurst     = 200
)

// maxAPIBody is the largest request body of the server API, in bytes.
const maxAPIBody = 1 << 20

// maxEmitTargets is the longest rooms, users or sockets list of one emit.
const maxEmitTargets = 1000

// api serves the server API. Handlers validate what a backend sends and then
// enter chatd where a socket's request does: s.chat for the chat rules and
// the socket.io adapter for delivery, so both follow one set of rules and
// both act on the whole cluster.
type api struct {
	s   *Server
	cfg APIConfig
	now func() time.Time // the clock SigV4 dates are checked against

	mu       sync.Mutex               // guards the following field
	limiters map[string]*rate.Limiter // credential -> its request budget
}

func newAPI(s *Server, cfg APIConfig) *api {
	if cfg.GatewayEvent == "" {
		cfg.GatewayEvent = defaultGatewayEvent
	}
	if cfg.Rate <= 0 {
		cfg.Rate = defaultAPIRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = defaultAPIBurst
	}
	return &api{s: s, cfg: cfg, now: time.Now, limiters: make(map[string]*rate.Limiter)}
}

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
func (a *api) table() []route {
	return []route{
		{method: http.MethodPost, path: "/api/v1/rooms/{room}/messages", v1: a.postMessage},
		{method: http.MethodGet, path: "/api/v1/rooms/{room}/messages", v1: a.getMessages},
		{method: http.MethodGet, path: "/api/v1/rooms/{room}/presence", v1: a.getPresence},
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
	for _, rt := range (&api{}).table() {
		out = append(out, rt.pattern())
	}
	sort.Strings(out)
	return out
}

// v1Methods are the methods the /api/v1 fallback answers with a JSON 404 or
// 405, so that every error of /api/v1 has the JSON error body.
var v1Methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (a *api) routes(mux *http.ServeMux) {
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
func (a *api) unmatched(r *http.Request) (int, any, error) {
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
func (a *api) postMessage(r *http.Request) (int, any, error) {
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
	if u.Name, err = displayName(name, u.ID); err != nil {
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
	msg, fresh, err := a.s.chat.Send(ctx, u, rooms.Send{Room: room, Text: text, ClientMsgID: clientMsgID}, false)
	if err != nil {
		return 0, nil, err
	}
	if fresh {
		a.s.deliver(msg, "")
	}
	return http.StatusCreated, map[string]any{"message": msg}, nil
}

// getMessages answers a page of a room's history, as the history request.
func (a *api) getMessages(r *http.Request) (int, any, error) {
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
	page, err := a.s.chat.History(ctx, "", room, q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// getPresence lists a room's members with a connected socket.
func (a *api) getPresence(r *http.Request) (int, any, error) {
	room := r.PathValue("room")
	if err := rooms.ValidateRoom(room); err != nil {
		return 0, nil, err
	}
	if err := noQuery(r); err != nil {
		return 0, nil, err
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	users, err := a.s.chat.Presence(ctx, room)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"room": room, "users": users}, nil
}

// emit sends a custom event to rooms, users and sockets, each socket once.
func (a *api) emit(r *http.Request) (int, any, error) {
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
		targets = append(targets, userRoom(id))
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
	if err := a.s.nsp.To(targets...).Emit(event, data); err != nil {
		return 0, nil, &rooms.Error{Code: rooms.CodeBadRequest, Message: fmt.Sprintf("event %q cannot be emitted; choose another name", event), Err: err}
	}
	a.s.metrics.eventsOut.WithLabelValues("custom").Inc()
	return http.StatusAccepted, map[string]any{"ok": true}, nil
}

// liveSocket finds the socket named by the request's {socketId}, wherever
// it is connected; not_found when none is.
func (a *api) liveSocket(r *http.Request) (*socket.RemoteSocket, error) {
	id := r.PathValue("socketId")
	if !validSocketID(id) {
		return nil, rooms.Errorf(rooms.CodeNotFound, "no connected socket %q", truncate(id, 64))
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	sock, err := a.s.findSocket(ctx, id)
	if err != nil {
		return nil, err
	}
	if sock == nil {
		return nil, rooms.Errorf(rooms.CodeNotFound, "no connected socket %q", id)
	}
	return sock, nil
}

// getConnection describes a live socket anywhere in the cluster.
func (a *api) getConnection(r *http.Request) (int, any, error) {
	sock, err := a.liveSocket(r)
	if err != nil {
		return 0, nil, err
	}
	u, at, _ := socketUser(sock.Data())
	return http.StatusOK, map[string]any{
		"socketId":    string(sock.Id()),
		"userId":      u.ID,
		"name":        u.Name,
		"rooms":       chatRooms(sock),
		"connectedAt": at,
	}, nil
}

// deleteConnection disconnects one socket, wherever it is connected.
func (a *api) deleteConnection(r *http.Request) (int, any, error) {
	sock, err := a.liveSocket(r)
	if err != nil {
		return 0, nil, err
	}
	a.s.disconnect(socket.Room(sock.Id()))
	return http.StatusNoContent, nil, nil
}

// deleteUserConnections disconnects every socket of a user, on every
// instance; a user without sockets is not an error.
func (a *api) deleteUserConnections(r *http.Request) (int, any, error) {
	id := r.PathValue("userId")
	if err := rooms.ValidateUserID(id); err != nil {
		return 0, nil, err
	}
	a.s.disconnect(userRoom(id))
	return http.StatusNoContent, nil, nil
}

// ---------------------------------------------------------------- helpers

// requestContext bounds the storage work of one request.
func (a *api) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.s.cfg.RequestTimeout)
}

// protocolEvents are the client protocol's own event names, which the
// server API may not emit.
var protocolEvents = map[string]bool{
	"session": true, "join": true, "leave": true, "message": true,
	"typing": true, "history": true, "rooms": true, "presence": true, "sync": true,
}

// socketIOEvents are the event names socket.io reserves.
var socketIOEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// maxEventName is the longest custom event name, in bytes.
const maxEventName = 64

func validateEventName(ev string) error {
	switch {
	case protocolEvents[ev]:
		return rooms.Errorf(rooms.CodeBadRequest, "event %q belongs to the chat protocol; choose another name, such as \"notice\"", ev)
	case socketIOEvents[ev]:
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

// maxSocketID is the longest socket id chatd looks up, in bytes (socket.io
// makes ids of 24).
const maxSocketID = 64

// validSocketID reports whether id can be a socket.io socket id: 1 to 64 of
// A-Z a-z 0-9 _ - . # :, and not a user room's name.
func validSocketID(id string) bool {
	if id == "" || len(id) > maxSocketID || strings.HasPrefix(id, rooms.UserRoomPrefix) {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == '#', c == ':':
		default:
			return false
		}
	}
	return true
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

// disconnect disconnects every socket in room, on every instance, the way
// socket.disconnect() does on the server: the client gets a DISCONNECT
// packet, sees the reason "io server disconnect" and does not reconnect by
// itself; its connection closes once it has no namespace left. (Closing the
// transport instead, as DisconnectSockets(true) does, can drop that packet:
// the client then sees "transport close" and reconnects at once.)
func (s *Server) disconnect(room socket.Room) {
	s.nsp.In(room).DisconnectSockets(false)
}

// findSocket looks a socket up by id anywhere in the cluster, through the
// adapter, which may answer asynchronously. It returns nil when no instance
// has the socket, and an unavailable error when the cluster does not answer
// within the request's time.
func (s *Server) findSocket(ctx context.Context, id string) (*socket.RemoteSocket, error) {
	type answer struct {
		socks []*socket.RemoteSocket
		err   error
	}
	ch := make(chan answer, 1)
	s.nsp.In(socket.Room(id)).FetchSockets()(func(socks []*socket.RemoteSocket, err error) {
		select {
		case ch <- answer{socks, err}:
		default: // answered already
		}
	})
	select {
	case <-ctx.Done():
		return nil, rooms.Errorf(rooms.CodeUnavailable, "the cluster did not answer the connection lookup in time; try again")
	case ans := <-ch:
		if ans.err != nil {
			return nil, &rooms.Error{Code: rooms.CodeUnavailable, Message: "the cluster could not look the connection up; try again", Err: ans.err}
		}
		for _, sock := range ans.socks {
			if string(sock.Id()) == id {
				return sock, nil
			}
		}
		return nil, nil
	}
}
