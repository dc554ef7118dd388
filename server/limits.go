package server

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/httplimit"
	"github.com/chatd/chatd/rooms"
)

// Refusal reasons, the values of the limit label of chatd_limit_refusals_total.
const (
	refusedAPIAuth        = "api_auth_failures"
	refusedSocketsPerUser = "sockets_per_user"
	refusedPerAddress     = "connections_per_address"
	refusedHandshakes     = "handshakes_per_second"
	refusedConnections    = "connections"
	refusedUserEvents     = "user_events"
	refusedAdminAuth      = "admin_login_failures"
)

// refusalLimits are every value of the limit label.
var refusalLimits = []string{refusedAPIAuth, refusedSocketsPerUser, refusedPerAddress, refusedHandshakes, refusedConnections, refusedUserEvents, refusedAdminAuth}

// connectTimeout is how long an Engine.IO session may go without sending
// its socket.io CONNECT before it is closed (socket.io's connectTimeout,
// 45 s by default): a bare handshake holds about 17 kB and 2 goroutines.
const connectTimeout = 5 * time.Second

// ConnLimits are the connection limits; 0 turns a limit off.
type ConnLimits struct {
	// SocketsPerUser bounds the sockets of one user on this instance.
	SocketsPerUser int
	// ConnectionsPerAddress bounds the sockets from one client address on
	// this instance.
	ConnectionsPerAddress int
	// HandshakesPerSecond bounds the new Engine.IO sessions one client
	// address may start per second (it may start twice as many at once).
	HandshakesPerSecond float64
	// Connections bounds the Engine.IO sessions of this instance.
	Connections int
	// UserEventsPerSecond is the sustained event rate of one user over all
	// its sockets on this instance, in events per second; UserEventBurst is
	// how many it may send at once. Beside the per-socket rate, it keeps
	// many tabs from multiplying a user's rate. Either is raised to the
	// per-socket EventsPerSecond and EventBurst when below them.
	UserEventsPerSecond float64
	UserEventBurst      int
}

// guard is the server's protection against abusive clients beyond the
// per-socket rate: who a client is behind the trusted proxies, and the
// throttle on failed API authentication.
type guard struct {
	limits     ConnLimits
	proxies    httplimit.Proxies
	failures   *httplimit.Failures
	handshakes *httplimit.Rates // nil without a handshake limit
	userEvents *httplimit.Rates // by user id; nil without a user budget
	sessions   func() int       // Engine.IO sessions of this instance
	refused    *prometheus.CounterVec

	mu     sync.Mutex     // guards the following field
	byAddr map[string]int // client address -> sockets on this instance
}

// newGuard builds the guard for cfg, registering its metrics on reg.
func newGuard(cfg Config, reg prometheus.Registerer) (*guard, error) {
	proxies, err := httplimit.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	g := &guard{
		limits:   cfg.ConnLimits,
		byAddr:   make(map[string]int),
		sessions: func() int { return 0 },
		proxies:  proxies,
		failures: httplimit.NewFailures(0, 0),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_limit_refusals_total",
			Help: "Clients or requests refused by a limit, by limit (sockets_per_user, connections_per_address, handshakes_per_second, connections, connect_timeout, user_events, api_auth_failures, admin_login_failures).",
		}, []string{"limit"}),
	}
	if hs := cfg.ConnLimits.HandshakesPerSecond; hs > 0 {
		g.handshakes = httplimit.NewRates(hs, max(1, int(2*hs)))
	}
	if ue := cfg.ConnLimits.UserEventsPerSecond; ue > 0 {
		// Never stricter than one socket's own budget: the user budget
		// keeps tabs from multiplying a user's rate; it does not lower
		// what one socket may send.
		g.limits.UserEventsPerSecond = max(ue, cfg.EventsPerSecond)
		g.userEvents = httplimit.NewRates(g.limits.UserEventsPerSecond, max(1, cfg.ConnLimits.UserEventBurst, cfg.EventBurst))
	}
	for _, l := range refusalLimits {
		g.refused.WithLabelValues(l) // every series exists from the start, at 0
	}
	if reg != nil {
		reg.MustRegister(g.refused)
	}
	return g, nil
}

// clientAddr is the address of the client behind r.
func (g *guard) clientAddr(r *http.Request) string { return g.proxies.ClientAddr(r) }

// authThrottled answers a request from an address that failed API
// authentication too often, before its credentials are looked at, with
// write (which must answer 429 and say when to retry). It reports whether
// it answered.
func (g *guard) authThrottled(w http.ResponseWriter, r *http.Request, write func(w http.ResponseWriter)) bool {
	wait, blocked := g.failures.Blocked(g.clientAddr(r))
	if !blocked {
		return false
	}
	g.refused.WithLabelValues(refusedAPIAuth).Inc()
	w.Header().Set("Retry-After", httplimit.RetryAfter(wait))
	write(w)
	return true
}

// authFailed counts a failed API authentication of r's client address.
func (g *guard) authFailed(r *http.Request) { g.failures.Fail(g.clientAddr(r)) }

// admit refuses a new Engine.IO session (a request to the socket.io path
// without a sid) before the handshake: 503 when this instance holds
// limits.connections sessions already, 429 when the client address
// started more than limits.handshakes_per_second. Both answers carry a JSON
// body {code, message} and Retry-After; the socket.io client reports a
// connect_error and retries with its backoff.
func (g *guard) admit(next http.Handler) http.Handler {
	if g.limits.Connections <= 0 && g.handshakes == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sid") != "" {
			next.ServeHTTP(w, r)
			return
		}
		if n := g.limits.Connections; n > 0 && g.sessions() >= n {
			g.refused.WithLabelValues(refusedConnections).Inc()
			refuseHTTP(w, http.StatusServiceUnavailable, 5*time.Second, rooms.CodeUnavailable,
				"this instance has as many connections as it accepts (limits.connections); retry shortly")
			return
		}
		if g.handshakes != nil && !g.handshakes.Allow(g.clientAddr(r)) {
			g.refused.WithLabelValues(refusedHandshakes).Inc()
			refuseHTTP(w, http.StatusTooManyRequests, time.Second, rooms.CodeRateLimited,
				"too many new connections from your address (limits.handshakes_per_second); retry in a second")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseHTTP answers a refused handshake.
func refuseHTTP(w http.ResponseWriter, status int, retry time.Duration, code rooms.Code, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Seconds()))))
	writeJSON(w, status, map[string]any{"code": string(code), "message": msg})
}

// admitSocket refuses a socket.io CONNECT of user u from the handshake's
// address when the user has limits.sockets_per_user sockets on this
// instance already, or the address limits.connections_per_address; the
// client gets a connect_error whose message is "rate_limited" and whose
// data is {code, message}. Sockets that connect at the same moment may
// pass the limit by a few: the count moves when a socket is set up.
func (s *Server) admitSocket(sock *socket.Socket, userID string) *socket.ExtendedError {
	g := s.guard
	if n := g.limits.SocketsPerUser; n > 0 {
		s.mu.Lock()
		have := s.users[userID]
		s.mu.Unlock()
		if have >= n {
			g.refused.WithLabelValues(refusedSocketsPerUser).Inc()
			return refusal(rooms.CodeRateLimited, "you have "+strconv.Itoa(have)+" connections open already, the most allowed (limits.sockets_per_user); close one first")
		}
	}
	if n := g.limits.ConnectionsPerAddress; n > 0 {
		addr := g.socketAddr(sock)
		g.mu.Lock()
		have := g.byAddr[addr]
		g.mu.Unlock()
		if have >= n {
			g.refused.WithLabelValues(refusedPerAddress).Inc()
			return refusal(rooms.CodeRateLimited, "your address has as many connections open as allowed (limits.connections_per_address); close one first")
		}
	}
	return nil
}

func refusal(code rooms.Code, msg string) *socket.ExtendedError {
	return socket.NewExtendedError(string(code), map[string]any{"code": string(code), "message": msg})
}

// socketAddr is the client address of a socket's handshake.
func (g *guard) socketAddr(sock *socket.Socket) string {
	h := sock.Handshake()
	return g.proxies.ClientAddrOf(h.Address, h.Headers.Header())
}

// trackAddr counts a socket set up (delta 1) or gone (-1) under its client
// address.
func (g *guard) trackAddr(addr string, delta int) {
	if g.limits.ConnectionsPerAddress <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.byAddr[addr] + delta; n > 0 {
		g.byAddr[addr] = n
	} else {
		delete(g.byAddr, addr)
	}
}

// allowUser takes one event from the budget of userID, shared by all the
// user's sockets on this instance, and answers the refusal when it is
// spent. The budget of a user whose bucket is full again is forgotten.
func (g *guard) allowUser(userID string) error {
	if g.userEvents == nil || g.userEvents.Allow(userID) {
		return nil
	}
	g.refused.WithLabelValues(refusedUserEvents).Inc()
	return rooms.Errorf(rooms.CodeRateLimited, "too many requests from your connections together; slow down to %g per second over all of them", g.limits.UserEventsPerSecond)
}

// AuthThrottled answers a server API request from a client address that
// failed authentication too often with write, before its credentials are
// looked at, and reports whether it did (api.AuthGuard).
func (s *Server) AuthThrottled(w http.ResponseWriter, r *http.Request, write func(w http.ResponseWriter)) bool {
	return s.guard.authThrottled(w, r, write)
}

// AuthFailed counts a failed server API authentication against r's client
// address (api.AuthGuard).
func (s *Server) AuthFailed(r *http.Request) { s.guard.authFailed(r) }

// bareCloseGrace is how long after socket.io's own connect timeout (which
// chatd sets this much later than connectTimeout) closed a session that sent
// its CONNECT but was never admitted chatd waits for the close packet to be
// fetched before it drops the session: a client that never polls again
// would otherwise hold it (and its 2 goroutines) until the ping timeout.
const bareCloseGrace = time.Second

// dropBareSessions ends every Engine.IO session that has not sent a
// socket.io CONNECT (to any namespace) connectTimeout after it opened. It
// drops them at once rather than through the library's orderly close: a
// polling session without a pending request would keep a close timer (a
// goroutine) for another 30 s after that. A pending poll still gets the
// close packet; a later one gets the "unknown session" answer, on which
// socket.io-client reconnects. Sessions that sent a CONNECT are left to
// socket.io's connect timeout, and dropped bareCloseGrace after it if they
// are still closing.
func (s *Server) dropBareSessions() {
	_ = s.io.Engine().On("connection", func(args ...any) {
		c, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		var sentConnect atomic.Bool
		watch := func(args ...any) {
			if !sentConnect.Load() && len(args) > 0 && isConnectPacket(args[0]) {
				sentConnect.Store(true)
			}
		}
		_ = c.On("packet", watch)
		time.AfterFunc(connectTimeout, func() {
			// Only the first connectTimeout of a session is watched, so its
			// later packets do not pay for the listener.
			c.RemoveListener("packet", watch)
			if !sentConnect.Load() {
				if c.ReadyState() == "open" {
					s.polls.Drop(c)
				}
				return
			}
			time.AfterFunc(2*bareCloseGrace, func() {
				if c.ReadyState() == "closing" {
					s.polls.Drop(c)
				}
			})
		})
	})
}

// isConnectPacket reports whether an Engine.IO packet is a message that
// carries a socket.io CONNECT packet (type 0, to any namespace).
func isConnectPacket(arg any) bool {
	p, ok := arg.(*packet.Packet)
	if !ok || p == nil || p.Type != packet.MESSAGE {
		return false
	}
	b, ok := p.Data.(*types.StringBuffer)
	if !ok {
		return false
	}
	d := b.Bytes()
	return len(d) > 0 && d[0] == '0'
}
