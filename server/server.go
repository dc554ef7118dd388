package server

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/internal/socketio"
	"github.com/chatd/chatd/internal/socketio/warm"
	"github.com/chatd/chatd/internal/socketio/wstransport"
	"github.com/chatd/chatd/protocol"
	"github.com/chatd/chatd/rooms"
)

// Config is what the server needs to know of chatd's settings. cmd/chatd
// fills it from package config; zero values get defaults in [New].
type Config struct {
	// AuthMode is AuthDev, AuthJWT or AuthHook (which needs
	// Deps.Hooks.Connect).
	AuthMode string
	// JWTSecret is the HS256 secret in jwt mode.
	JWTSecret []byte
	// JWTPublicKey is an RSA or EC public key for RS256/ES256 in jwt mode.
	JWTPublicKey crypto.PublicKey
	// JWTChecks are the checks of the registered claims of tokens in jwt
	// mode (exp required, aud, iss, leeway).
	JWTChecks ClaimChecks
	// DevInsecure says that dev mode runs where others can reach it
	// (auth.dev_insecure on a non-loopback address): /chatd/config.json
	// tells the web page, which shows a banner.
	DevInsecure bool

	// MessageBytes is the largest message text, in bytes.
	MessageBytes int
	// PayloadBytes is the largest socket.io packet, in bytes.
	PayloadBytes int
	// EventsPerSecond is the sustained event rate one socket may send, in
	// events per second; EventBurst is how many it may send at once.
	EventsPerSecond float64
	EventBurst      int
	// RateStrikes is how many rate_limited answers within rateStrikeWindow a
	// socket may get before it is disconnected.
	RateStrikes int
	// RecoveryMaxDisconnection is how long socket.io's connection state
	// recovery keeps a dropped socket's session; 0 turns recovery off.
	RecoveryMaxDisconnection time.Duration
	// RecoveryMaxPackets is the most packets one session restore replays on
	// a single instance; a client that missed more gets a fresh session.
	// Default protocol.DefaultRecoveryMaxPackets. (In cluster mode the adapter has
	// its own bound.)
	RecoveryMaxPackets int
	// RecoveryBufferLength is how many recent packets a single instance
	// keeps for restores, in packets. Default protocol.DefaultRecoveryBufferLength.
	RecoveryBufferLength int
	// CORSOrigins are the browser origins allowed cross-origin; "*" is any.
	CORSOrigins []string
	// RequestTimeout bounds the storage work of one request, in time.
	RequestTimeout time.Duration
	// SendBufferBytes bounds what may be queued for one WebSocket client
	// that does not read fast enough, in bytes; a client that would exceed
	// it is disconnected. Default wstransport.DefaultSendBufferBytes.
	SendBufferBytes int

	// RoomPolicies decides who may join, read and post in each room; nil
	// makes every room open.
	RoomPolicies *rooms.Policies
	// TrustedProxies are the addresses and CIDRs whose X-Forwarded-For
	// names the client; see limits.go.
	TrustedProxies []string
	// ConnLimits bound the connections per user, per address and in total;
	// zero values turn them off. See limits.go.
	ConnLimits ConnLimits

	// InstanceID names this instance in logs.
	InstanceID string
	// Version is reported by /chatd/config.json.
	Version string
	// Web serves the browser client at "/" when set.
	Web http.Handler
	// Metrics serves /metrics when true.
	Metrics bool
	// Pprof serves Go's profiling endpoints at /debug/pprof/ when true.
	Pprof bool
	// Admin turns on the socket.io Admin UI's namespace (/admin) when its
	// user name and password hash are set. See admin.go.
	Admin AdminConfig
}

// Deps are the server's collaborators.
type Deps struct {
	// Chat applies the chat rules; required.
	Chat *rooms.Chat
	// Adapter builds the socket.io adapter; nil is the in-memory one.
	Adapter socket.AdapterConstructor
	// Ready reports whether the backing services (Redis) answer; nil is
	// always ready.
	Ready func() bool
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Grants holds the rooms the server API granted; nil is in memory.
	Grants rooms.Grants
	// Cutoffs holds when the server API last disconnected each user; nil
	// is in memory.
	Cutoffs rooms.Cutoffs
	// Events receives the events for the application's backend (messages,
	// members, users online and offline, rooms occupied and vacated); nil
	// discards them. Publish must not block.
	Events events.Sink
	// AdminSessions keeps the Admin UI's logins; nil is in memory.
	AdminSessions AdminSessions
	// Hooks are the application backend's hooks; each nil one is off.
	Hooks Hooks
}

// Server is chatd's socket.io server and HTTP routes, as one http.Handler.
type Server struct {
	cfg      Config
	chat     *rooms.Chat
	log      *slog.Logger
	auth     *authenticator
	io       *socket.Server
	nsp      socket.Namespace
	mux      *http.ServeMux
	ready    func() bool
	metrics  *metrics
	reg      *prometheus.Registry
	delivery *Delivery
	events   events.Sink // see events.go
	access   access      // room policies, grants and token checks (access.go)
	hooks    Hooks       // the backend's hooks (hooks.go)
	admin    *admin      // the Admin UI's namespace; nil when it is off
	// clustered is true with a cluster adapter (deps.Adapter).
	clustered bool
	// first holds the routes mounted with Handle whose first path segment
	// is a wildcard; ServeHTTP tries them before mux.
	first *http.ServeMux

	failures  *failureLog
	closes    *closeWatch
	guard     *guard // limits beyond the per-socket rate; see limits.go
	polls     *socketio.PollGuard
	ws        *wstransport.Builder // the WebSocket transport and its counters
	handlers  *warm.Pool           // where socket events run (see onEvent)
	draining  atomic.Bool
	closeOnce sync.Once
	sockets   atomic.Int64 // connected sockets, as the chatd_sockets gauge

	mu    sync.Mutex     // guards the following field
	users map[string]int // user id -> sockets on this instance
}

// handlerWorkers bounds the goroutines that run socket events; beyond it an
// event runs on the library's own goroutine. handlerIdle is how long an idle
// one stays.
const (
	handlerWorkers = 1024
	handlerIdle    = 2 * time.Second
)

// rateStrikeWindow is the window in which RateStrikes are counted.
const rateStrikeWindow = 10 * time.Second

// New returns a Server for cfg and deps. It validates cfg again, because
// embedders may skip package config.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Chat == nil {
		return nil, errors.New("server: Deps.Chat is required")
	}
	if cfg.AuthMode == "" {
		cfg.AuthMode = AuthDev
	}
	if cfg.MessageBytes <= 0 {
		cfg.MessageBytes = rooms.DefaultMessageBytes
	}
	if cfg.PayloadBytes <= 0 {
		cfg.PayloadBytes = protocol.DefaultPayloadBytes
	}
	if cfg.EventsPerSecond <= 0 {
		cfg.EventsPerSecond = 20
	}
	if cfg.EventBurst <= 0 {
		cfg.EventBurst = 40
	}
	if cfg.RateStrikes <= 0 {
		cfg.RateStrikes = 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.SendBufferBytes <= 0 {
		cfg.SendBufferBytes = wstransport.DefaultSendBufferBytes
	}
	if cfg.RecoveryMaxDisconnection < 0 {
		return nil, errors.New("server: RecoveryMaxDisconnection must not be negative")
	}
	if cfg.RecoveryMaxPackets <= 0 {
		cfg.RecoveryMaxPackets = protocol.DefaultRecoveryMaxPackets
	}
	if cfg.RecoveryBufferLength <= 0 {
		cfg.RecoveryBufferLength = protocol.DefaultRecoveryBufferLength
	}
	auth, err := newAuthenticator(cfg.AuthMode, cfg.JWTSecret, cfg.JWTPublicKey)
	if err != nil {
		return nil, err
	}
	if cfg.AuthMode == AuthHook && deps.Hooks.Connect == nil {
		return nil, errors.New("server: auth mode hook needs Deps.Hooks.Connect")
	}
	auth.withClaimChecks(cfg.JWTChecks)
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	ready := deps.Ready
	if ready == nil {
		ready = func() bool { return true }
	}
	g, err := newGuard(cfg, reg)
	if err != nil {
		return nil, fmt.Errorf("server: TrustedProxies: %w", err)
	}
	s := &Server{
		guard: g,
		cfg:   cfg,
		chat:  deps.Chat,
		log:   log,
		auth:  auth,
		mux:   http.NewServeMux(),
		first: http.NewServeMux(),
		ready: ready,
		reg:   reg,
		users: make(map[string]int),

		clustered: deps.Adapter != nil,
		failures:  newFailureLog(),
		closes:    newCloseWatch(),
		polls:     socketio.NewPollGuard(),
		handlers:  warm.New(handlerWorkers, handlerIdle),
		hooks:     deps.Hooks,
	}
	s.access = newAccess(cfg, deps)
	s.events = deps.Events
	if s.events == nil {
		s.events = events.Discard
	}

	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetMaxHttpBufferSize(int64(cfg.PayloadBytes))
	opts.SetPingInterval(25 * time.Second)
	opts.SetPingTimeout(20 * time.Second)
	// chatd drops sessions that send no CONNECT at connectTimeout itself
	// (dropBareSessions); socket.io's timeout, later, covers those whose
	// CONNECT was not admitted.
	opts.SetConnectTimeout(connectTimeout + bareCloseGrace)
	// chatd's own WebSocket transport (see internal/socketio/wstransport); polling
	// stays the library's.
	s.ws = &wstransport.Builder{
		SendBufferBytes: cfg.SendBufferBytes,
		ReadLimit:       int64(cfg.PayloadBytes),
		Stats:           new(wstransport.Stats),
	}
	opts.SetTransports(types.NewSet[transports.TransportCtor](engine.Polling, s.ws))
	opts.SetAllowRequest(func(*types.HttpContext) error {
		if s.draining.Load() {
			return errors.New("this instance is shutting down")
		}
		return nil
	})
	if len(cfg.CORSOrigins) > 0 {
		opts.SetCors(corsOptions(cfg.CORSOrigins))
	}
	if cfg.RecoveryMaxDisconnection > 0 {
		rec := &socket.ConnectionStateRecovery{}
		rec.SetMaxDisconnectionDuration(cfg.RecoveryMaxDisconnection.Milliseconds())
		rec.SetSkipMiddlewares(true)
		opts.SetConnectionStateRecovery(rec)
	}
	switch {
	case deps.Adapter != nil:
		opts.SetAdapter(deps.Adapter)
	case cfg.RecoveryMaxDisconnection > 0:
		opts.SetAdapter(&socketio.RecoveryAdapterBuilder{MaxPackets: cfg.RecoveryMaxPackets, BufferLen: cfg.RecoveryBufferLength})
	default:
		opts.SetAdapter(socketio.LocalAdapterBuilder{})
	}
	if cfg.Admin.enabled() && deps.Adapter == nil {
		// The Admin UI's namespace has no use for connection state
		// recovery; on a single instance it takes none of the chat
		// namespace's recovery buffer. (In cluster mode the adapter
		// records the chat namespace only: AdapterOptions.RecoveryNamespaces.)
		opts.SetAdapter(namespaceAdapters{main: opts.Adapter(), byName: map[string]socket.AdapterConstructor{AdminNamespace: socketio.LocalAdapterBuilder{}}})
	}
	if cfg.RecoveryMaxDisconnection > 0 {
		opts.SetAdapter(sessionGuardBuilder{inner: opts.Adapter(), s: s})
	}
	s.io = socket.NewServer(nil, opts)
	s.nsp = s.io.Sockets()
	s.guard.sessions = func() int { return int(min(s.io.Engine().ClientsCount(), math.MaxInt)) } //nolint:gosec // clamped first
	s.metrics = newMetrics(reg, s.localRoomCount, s.ws.Stats)
	s.delivery = &Delivery{nsp: s.nsp, metrics: s.metrics, events: s.events}
	s.io.Use(s.authMiddleware)
	_ = s.io.On("connection", func(args ...any) {
		if sock, ok := args[0].(*socket.Socket); ok {
			s.onConnection(sock)
		}
	})

	s.routes(s.guard.admit(sameOriginAllowed(socketio.ReleaseAfterUpgrade(s.polls.Wrap(s.io.ServeHandler(nil))))))
	// After ServeHandler, which makes the engine.
	s.watchCloses()
	s.dropBareSessions() // after ServeHandler, which makes the engine
	if cfg.Admin.enabled() {
		s.admin = newAdmin(s, cfg.Admin, deps.AdminSessions, reg) // after ServeHandler too
	}
	return s, nil
}

// namespaceAdapters builds the adapters of the namespaces in byName with
// their own constructor, and every other namespace's with main.
type namespaceAdapters struct {
	main   socket.AdapterConstructor
	byName map[string]socket.AdapterConstructor
}

// New implements socket.AdapterConstructor.
func (b namespaceAdapters) New(nsp socket.Namespace) socket.Adapter {
	if c, ok := b.byName[nsp.Name()]; ok {
		return c.New(nsp)
	}
	return b.main.New(nsp)
}

func corsOptions(origins []string) *types.Cors {
	c := &types.Cors{Methods: []string{"GET", "POST"}, Credentials: true}
	for _, o := range origins {
		if o == "*" {
			c.Origin = true // reflect the request's origin
			return c
		}
	}
	c.Origin = origins
	return c
}

func (s *Server) routes(sio http.Handler) {
	s.mux.Handle("/socket.io/", sio)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("GET /chatd/config.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"authMode":     s.cfg.AuthMode,
			"devInsecure":  s.cfg.AuthMode == AuthDev && s.cfg.DevInsecure,
			"messageBytes": s.cfg.MessageBytes,
			"version":      s.cfg.Version,
		})
	})
	if s.cfg.Metrics {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	}
	if s.cfg.Pprof {
		s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if s.cfg.Web != nil {
		s.mux.Handle("/", s.cfg.Web)
	}
}

// Handle serves the requests that match pattern (an http.ServeMux
// pattern) with h, beside the server's own routes; cmd/chatd mounts the
// server API with it. Call it before serving. A pattern whose first path
// segment is a wildcard, such as "/{stage}/@connections/{socketId}", would
// conflict with "/socket.io/" in one ServeMux; such patterns are kept in a
// ServeMux of their own that is matched first, ahead of every other route,
// so they should be narrow (a fixed segment after the wildcard).
func (s *Server) Handle(pattern string, h http.Handler) {
	path := pattern
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		path = strings.TrimLeft(pattern[i:], " ")
	}
	if strings.HasPrefix(path, "/{") {
		s.first.Handle(pattern, h)
		return
	}
	s.mux.Handle(pattern, h)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.first.Handler(r); pattern != "" {
		s.first.ServeHTTP(w, r) // which sets the request's path values
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
	case !s.ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "redis unavailable"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// localRoomCount is the number of socket.io rooms on this instance.
func (s *Server) localRoomCount() float64 {
	return float64(s.nsp.Adapter().Rooms().Len())
}

// Sockets returns the number of sockets connected to this instance.
func (s *Server) Sockets() int64 { return s.sockets.Load() }

// Draining reports whether Drain has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Drain moves this instance's clients away before shutdown: /readyz turns
// 503 and new Engine.IO sessions are refused at once, then the connected
// sockets have their transport closed in batches spread over window, so
// that they reconnect (and, with connection state recovery, recover) on
// other instances instead of all at once. Drain returns once the last batch
// was closed, or when ctx ends. The listener stays open meanwhile: long-
// polling clients need it until their transport is closed.
func (s *Server) Drain(ctx context.Context, window time.Duration) {
	if s.draining.Swap(true) {
		return
	}
	s.metrics.draining.Set(1)
	var socks []*socket.Socket
	s.nsp.Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		socks = append(socks, sock)
		return true
	})
	s.log.Info("draining", "sockets", len(socks), "window", window)
	const tick = 100 * time.Millisecond
	steps := max(1, int(window/tick))
	per := max(1, (len(socks)+steps-1)/steps)
	t := time.NewTicker(tick)
	defer t.Stop()
	for i := 0; i < len(socks); i += per {
		for _, sock := range socks[i:min(i+per, len(socks))] {
			// Closing the transport (not a socket.io disconnect) makes the
			// client reconnect by itself, to another instance.
			s.closeConn(sock.Conn(), closeDrain)
		}
		if i+per >= len(socks) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	// Engine.IO sessions without a socket (still connecting, or left by a
	// server-side disconnect) would hold a long-poll open for up to the ping
	// interval and keep the HTTP server from shutting down.
	// They are dropped, not closed in order: a session whose orderly close
	// had begun (a refused CONNECT, the client gone) would wait out the
	// library's 30 s polling close timeout. A pending long-poll still gets
	// the close packet.
	s.io.Engine().Clients().Range(func(_ string, c engine.Socket) bool {
		s.closes.mu.Lock()
		if p := s.closes.purpose[c.Id()]; p != nil && *p == "" {
			*p = closeDrain
		}
		s.closes.mu.Unlock()
		s.polls.Drop(c)
		return true
	})
}

// Close disconnects every remaining socket and closes the socket.io server
// and its adapter. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		if s.admin != nil {
			s.admin.close()
		}
		done := make(chan struct{})
		s.io.Close(func(error) { close(done) })
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return nil
}
