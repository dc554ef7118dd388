package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// Deps are the server API's collaborators.
type Deps struct {
	// Chat applies the chat rules; required.
	Chat *rooms.Chat
	// Delivery delivers to sockets on every instance and finds them
	// (server.Server.Delivery); required.
	Delivery *server.Delivery
	// Members moves users in and out of rooms and keeps the grants of the
	// room policies (*server.Server); required.
	Members Members
	// Guard throttles failed authentication per client address
	// (*server.Server); nil throttles nothing.
	Guard AuthGuard
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics; nil makes a private one.
	Registry prometheus.Registerer
}

// Members is what the member routes need of the socket server: the same
// user-level joins and leaves as a socket's join and leave requests, and
// the grants of the granted policy. *server.Server implements it.
type Members interface {
	// Grant lets a user join a room under the granted policy.
	Grant(ctx context.Context, userID, room string) error
	// Revoke takes a grant back.
	Revoke(ctx context.Context, userID, room string) error
	// JoinUser makes the user a member and puts every socket of the user,
	// on every instance, in the room.
	JoinUser(ctx context.Context, u rooms.User, room string) error
	// LeaveUser ends the membership and takes every socket of the user out.
	LeaveUser(ctx context.Context, u rooms.User, room string) error
	// CutOff records that the API disconnected the user now, so that no
	// session of the user dropped before is resumed.
	CutOff(ctx context.Context, userID string) error
}

var _ Members = (*server.Server)(nil)

// Handler serves the server API, as an http.Handler that the socket
// server mounts (see [Patterns]). Handlers validate what a backend sends
// and then enter chatd where a socket's request does: chat for the chat
// rules and the server's Delivery for delivery, so both follow one set of
// rules and both act on the whole cluster.
type Handler struct {
	cfg      Config
	chat     *rooms.Chat
	delivery *server.Delivery
	members  Members
	guard    AuthGuard
	log      *slog.Logger
	requests *prometheus.CounterVec // chatd_api_requests_total
	mux      *http.ServeMux         // the routes but the staged ones
	now      func() time.Time       // the clock SigV4 dates are checked against

	mu       sync.Mutex               // guards the following field
	limiters map[string]*rate.Limiter // credential -> its request budget
}

// New returns the server API for cfg and deps.
func New(cfg Config, deps Deps) (*Handler, error) {
	if deps.Chat == nil {
		return nil, errors.New("api: Deps.Chat is required")
	}
	if deps.Delivery == nil {
		return nil, errors.New("api: Deps.Delivery is required")
	}
	if deps.Members == nil {
		return nil, errors.New("api: Deps.Members is required")
	}
	if deps.Guard == nil {
		deps.Guard = noGuard{}
	}
	if cfg.GatewayEvent == "" {
		cfg.GatewayEvent = defaultGatewayEvent
	}
	if cfg.Rate <= 0 {
		cfg.Rate = defaultAPIRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = defaultAPIBurst
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &Handler{
		cfg:      cfg,
		chat:     deps.Chat,
		delivery: deps.Delivery,
		members:  deps.Members,
		guard:    deps.Guard,
		log:      log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_api_requests_total", Help: "Server API requests, by route and status code.",
		}, []string{"route", "status"}),
		mux:      http.NewServeMux(),
		now:      time.Now,
		limiters: make(map[string]*rate.Limiter),
	}
	if err := reg.Register(a.requests); err != nil {
		return nil, fmt.Errorf("api: registering the metrics: %w", err)
	}
	a.routes(a.mux)
	return a, nil
}

// ServeHTTP implements http.Handler for the paths of [Patterns].
func (a *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /{stage}/@connections/{id} cannot be a mux pattern beside /socket.io/.
	if a.serveStagedGateway(w, r) {
		return
	}
	a.mux.ServeHTTP(w, r)
}

// Patterns are the http.ServeMux patterns the socket server must route to
// the Handler (with server.Server.Handle): every route of the server API,
// the /api/v1 fallbacks that answer unknown paths with the JSON error
// body, and the staged @connections path, which has a wildcard first
// segment.
func Patterns() []string {
	var out []string
	for _, rt := range (&Handler{}).table() {
		if !rt.staged {
			out = append(out, rt.pattern())
		}
	}
	for _, m := range v1Methods {
		out = append(out, m+" /api/v1/")
	}
	return append(out, stagedPattern)
}

// stagedPattern is the path of the staged @connections routes, for every
// method: serveStagedGateway answers the methods it does not serve.
const stagedPattern = "/{stage}/@connections/{socketId}"
