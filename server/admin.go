package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/internal/httplimit"
	"github.com/chatd/chatd/rooms"
)

// AdminNamespace is the socket.io namespace the Admin UI
// (@socket.io/admin-ui) talks to.
const AdminNamespace = "/admin"

// AdminConfig turns on the Admin UI's namespace; it is off while Username
// or PasswordHash is empty.
type AdminConfig struct {
	// Username is the name the UI logs in with.
	Username string
	// PasswordHash is the bcrypt hash of the UI's password.
	PasswordHash []byte
	// ReadOnly ignores the UI's join, leave and disconnect requests and
	// leaves them out of the features the UI is told about, so that it
	// shows no buttons for them.
	ReadOnly bool
	// SessionTTL is how long a login lasts; default 12 hours.
	SessionTTL time.Duration
}

func (c AdminConfig) enabled() bool { return c.Username != "" && len(c.PasswordHash) > 0 }

// AdminSessions keeps the Admin UI's logins for their TTL: in memory on a
// single instance, in Redis for a cluster, so that a login on one instance
// holds on every other. Keys are digests, never the session ids the UI
// holds.
type AdminSessions interface {
	// Save keeps key for ttl.
	Save(ctx context.Context, key string, ttl time.Duration) error
	// Exists reports whether key is kept and has not expired.
	Exists(ctx context.Context, key string) (bool, error)
}

// MemoryAdminSessions is the single-instance AdminSessions.
type MemoryAdminSessions struct {
	now func() time.Time

	mu   sync.Mutex           // guards the following field
	keys map[string]time.Time // key -> expiry
}

var _ AdminSessions = (*MemoryAdminSessions)(nil)

// NewMemoryAdminSessions returns an empty MemoryAdminSessions.
func NewMemoryAdminSessions() *MemoryAdminSessions {
	return &MemoryAdminSessions{now: time.Now, keys: make(map[string]time.Time)}
}

// maxMemoryAdminSessions bounds the logins kept in memory; past it the
// oldest expiring ones are forgotten.
const maxMemoryAdminSessions = 10_000

// Save implements AdminSessions.
func (m *MemoryAdminSessions) Save(_ context.Context, key string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if len(m.keys) >= maxMemoryAdminSessions {
		var soonest string
		for k, exp := range m.keys {
			if !exp.After(now) {
				delete(m.keys, k)
			} else if soonest == "" || exp.Before(m.keys[soonest]) {
				soonest = k
			}
		}
		if len(m.keys) >= maxMemoryAdminSessions {
			delete(m.keys, soonest)
		}
	}
	m.keys[key] = now.Add(ttl)
	return nil
}

// Exists implements AdminSessions.
func (m *MemoryAdminSessions) Exists(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.keys[key]
	if ok && !exp.After(m.now()) {
		delete(m.keys, key)
		return false, nil
	}
	return ok, nil
}

// The Admin UI features chatd offers (typed-events.ts of
// @socket.io/admin-ui). The UI shows its Sockets, Rooms and Clients views
// only with ALL_EVENTS; JOIN, LEAVE and DISCONNECT show the per-socket
// buttons. EMIT and the room-wide MJOIN, MLEAVE, MDISCONNECT are not
// offered (see docs/admin.md).
var (
	adminWatchFeatures = []any{"ALL_EVENTS", "AGGREGATED_EVENTS"}
	adminWriteFeatures = []any{"JOIN", "LEAVE", "DISCONNECT"}
)

// errInvalidCredentials is the refusal the UI shows as a wrong login: its
// message must be exactly this.
const errInvalidCredentials = "invalid credentials" //nolint:gosec // the refusal's message, not a credential

// adminSessionBytes is the size of a session id, in random bytes (256 bits).
const adminSessionBytes = 32

// adminBcryptSlots bounds the password checks that run at once, so that a
// burst of logins from many addresses costs at most this many cores.
const adminBcryptSlots = 2

// adminRequestsPerSecond and adminRequestBurst bound the requests of one
// Admin UI socket.
const (
	adminRequestsPerSecond = 10
	adminRequestBurst      = 20
)

// admin is the server side of the Admin UI's protocol.
type admin struct {
	s        *Server
	cfg      AdminConfig
	nsp      socket.Namespace
	sessions AdminSessions
	failures *httplimit.Failures
	slots    chan struct{}
	features []any
	started  time.Time
	hostname string

	logins   *prometheus.CounterVec // by result
	requests *prometheus.CounterVec // by request and result
	dropped  prometheus.Counter

	events chan adminEvent
	stop   chan struct{}
	done   chan struct{}

	mu        sync.Mutex                   // guards the following fields
	announced map[socket.SocketId]struct{} // chat sockets the UIs have been told of
	counts    map[adminCountKey]int        // aggregated events of the current period
	checking  map[string]bool              // client addresses with a login being checked
}

// adminData is an admin socket's data between its login and its
// connection: the session id a password login issued, for the session
// event. Nothing else is kept in an admin socket's data.
type adminData struct {
	newSession string
}

// newAdmin sets up the Admin UI's namespace on s.
func newAdmin(s *Server, cfg AdminConfig, sessions AdminSessions, reg prometheus.Registerer) *admin {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if sessions == nil {
		sessions = NewMemoryAdminSessions()
	}
	host, _ := os.Hostname()
	a := &admin{
		s:         s,
		cfg:       cfg,
		sessions:  sessions,
		failures:  httplimit.NewFailures(0, 0),
		slots:     make(chan struct{}, adminBcryptSlots),
		started:   time.Now(),
		hostname:  host,
		events:    make(chan adminEvent, 4096),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		announced: make(map[socket.SocketId]struct{}),
		counts:    make(map[adminCountKey]int),
		checking:  make(map[string]bool),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_admin_logins_total",
			Help: "Admin UI connections, by result: password, session, invalid, throttled, busy, unavailable.",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_admin_requests_total",
			Help: "Admin UI requests (join, leave, _disconnect, emit), by request and result: ok, readonly, unsupported, malformed, unknown_namespace, unknown_socket, rate_limited, or the chat error code.",
		}, []string{"request", "result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_admin_events_dropped_total",
			Help: "Admin UI events (socket and room changes) dropped because the queue to the UIs was full.",
		}),
	}
	a.features = append([]any{}, adminWatchFeatures...)
	if !cfg.ReadOnly {
		a.features = append(a.features, adminWriteFeatures...)
	}
	if reg != nil {
		reg.MustRegister(a.logins, a.requests, a.dropped)
	}
	a.nsp = s.io.Of(AdminNamespace, nil)
	a.nsp.Use(a.authenticate)
	_ = a.nsp.On("connection", func(args ...any) {
		if sock, ok := args[0].(*socket.Socket); ok {
			a.onConnection(sock)
		}
	})
	_ = a.nsp.On(adminSocketsRequest, a.answerSockets)
	a.watch()
	go a.run()
	return a
}

// close stops the stats and the event queue.
func (a *admin) close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

// sessionKey is what the store keeps for a session id: a digest of the id
// and the password hash, so that a new password ends every session, and
// whoever reads the store cannot log in with what it finds.
func (a *admin) sessionKey(id string) string {
	h := sha256.New()
	h.Write(a.cfg.PasswordHash)
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil))
}

// validSessionID reports whether id has the shape of the ids chatd issues.
func validSessionID(id string) bool {
	if len(id) != base64.RawURLEncoding.EncodedLen(adminSessionBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

// loginResult is how an admin CONNECT went.
type loginResult string

const (
	loginPassword    loginResult = "password"
	loginSession     loginResult = "session"
	loginInvalid     loginResult = "invalid"
	loginThrottled   loginResult = "throttled"
	loginBusy        loginResult = "busy"
	loginUnavailable loginResult = "unavailable"
)

// login checks the auth payload of an admin CONNECT: {sessionId} of an
// earlier login, or {username, password}. Anything else (a chat token, a
// dev-mode user id, wrong types) is invalid. A password login returns the
// new session's id.
func (a *admin) login(ctx context.Context, auth map[string]any) (loginResult, string) {
	if raw, ok := auth["sessionId"]; ok && raw != nil {
		id, _ := raw.(string)
		if !validSessionID(id) {
			return loginInvalid, ""
		}
		ok, err := a.sessions.Exists(ctx, a.sessionKey(id))
		switch {
		case err != nil:
			a.s.log.Warn("admin: sessions unavailable", "err", err)
			return loginUnavailable, ""
		case !ok:
			return loginInvalid, ""
		}
		return loginSession, ""
	}
	user, uok := auth["username"].(string)
	pass, pok := auth["password"].(string)
	if !uok || !pok || pass == "" {
		return loginInvalid, ""
	}
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return loginBusy, ""
	}
	// Compared in full even for a wrong name, so that the time taken does
	// not tell whether the name was right.
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.Username)) == 1
	passOK := bcrypt.CompareHashAndPassword(a.cfg.PasswordHash, []byte(pass)) == nil
	<-a.slots
	if !userOK || !passOK {
		return loginInvalid, ""
	}
	b := make([]byte, adminSessionBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	id := base64.RawURLEncoding.EncodeToString(b)
	if err := a.sessions.Save(ctx, a.sessionKey(id), a.cfg.SessionTTL); err != nil {
		a.s.log.Warn("admin: session not saved", "err", err)
		return loginUnavailable, ""
	}
	return loginPassword, id
}

// authenticate is the admin namespace's middleware. A refused CONNECT gets
// a connect_error: "invalid credentials" for a wrong login (what the UI
// shows as such), a sentence for a throttled or failed one. Every invalid
// login spends one of the address's failures (httplimit.Failures: 10 at
// once, then one every 2 s), and an address has one login checked at a
// time.
func (a *admin) authenticate(sock *socket.Socket, next func(*socket.ExtendedError)) {
	addr := a.s.guard.socketAddr(sock)
	if wait, blocked := a.failures.Blocked(addr); blocked {
		a.logins.WithLabelValues(string(loginThrottled)).Inc()
		a.s.guard.refused.WithLabelValues(refusedAdminAuth).Inc()
		next(socket.NewExtendedError("too many failed logins from your address; retry in "+httplimit.RetryAfter(wait)+" s", nil))
		return
	}
	// One login per address at a time: parallel guesses would all pass the
	// throttle before the first of them failed.
	a.mu.Lock()
	busy := a.checking[addr]
	a.checking[addr] = true
	a.mu.Unlock()
	if busy {
		a.logins.WithLabelValues(string(loginBusy)).Inc()
		next(socket.NewExtendedError("another login from your address is being checked; retry in a moment", nil))
		return
	}
	defer func() {
		a.mu.Lock()
		delete(a.checking, addr)
		a.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), a.s.cfg.RequestTimeout)
	defer cancel()
	result, id := a.login(ctx, sock.Handshake().Auth)
	a.logins.WithLabelValues(string(result)).Inc()
	switch result {
	case loginPassword, loginSession:
		a.s.log.Info("admin: login", "how", string(result), "address", addr)
		sock.SetData(&adminData{newSession: id})
		next(nil)
	case loginInvalid:
		a.failures.Fail(addr)
		a.s.log.Info("admin: login refused", "address", addr)
		next(socket.NewExtendedError(errInvalidCredentials, nil))
	case loginBusy:
		next(socket.NewExtendedError("too many logins at once; retry in a moment", nil))
	default:
		next(socket.NewExtendedError("admin sessions are unavailable; retry in a moment", nil))
	}
}

// adminWatchers is the admin namespace's room of the connected UIs, which
// every instance's stats and socket changes go to.
const adminWatchers socket.Room = "watchers"

// onConnection greets a logged-in UI: its new session id, the features,
// this instance's stats and the sockets of the whole cluster; then it
// hears every instance's stats and socket changes.
func (a *admin) onConnection(sock *socket.Socket) {
	if d, ok := sock.Data().(*adminData); ok && d.newSession != "" {
		_ = sock.Emit("session", d.newSession)
	}
	sock.SetData(nil)
	_ = sock.Emit("config", map[string]any{"supportedFeatures": a.features})
	lim := rate.NewLimiter(adminRequestsPerSecond, adminRequestBurst)
	for _, name := range []string{"join", "leave", "_disconnect", "emit"} {
		_ = sock.On(name, func(args ...any) { a.request(sock, lim, name, args) })
	}
	sock.Join(adminWatchers)
	_ = sock.Emit("server_stats", a.stats())
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*a.s.cfg.RequestTimeout)
		defer cancel()
		_ = sock.Emit("all_sockets", a.clusterSockets(ctx))
	}()
}

// Results of admin requests other than the chat error codes.
const (
	adminOK               = "ok"
	adminReadOnly         = "readonly"
	adminUnsupported      = "unsupported"
	adminMalformed        = "malformed"
	adminUnknownNamespace = "unknown_namespace"
	adminUnknownSocket    = "unknown_socket"
	adminRateLimited      = "rate_limited"
)

// adminAction is a parsed join, leave or _disconnect request.
type adminAction struct {
	name     string // join, leave, _disconnect
	room     string // join and leave
	socketID string
}

// parseAdminRequest checks a request's arguments: join and leave are
// (nsp, room, socketId), _disconnect (nsp, close, socketId). Only the chat
// namespace "/" and one socket (the filter the UI's buttons pass) are
// accepted; a missing or other filter, which would reach a whole room or
// namespace, is refused. The result is "" for a valid request.
func parseAdminRequest(name string, args []any) (adminAction, string) {
	if name == "emit" {
		return adminAction{}, adminUnsupported
	}
	if len(args) != 3 {
		return adminAction{}, adminMalformed
	}
	nsp, ok := args[0].(string)
	if !ok {
		return adminAction{}, adminMalformed
	}
	if nsp != "/" {
		return adminAction{}, adminUnknownNamespace
	}
	act := adminAction{name: name}
	switch name {
	case "join", "leave":
		room, ok := args[1].(string)
		if !ok {
			return adminAction{}, adminMalformed
		}
		if err := rooms.ValidateRoom(room); err != nil {
			return adminAction{}, string(rooms.ErrorOf(err).Code)
		}
		act.room = room
	case "_disconnect":
		if _, ok := args[1].(bool); !ok {
			return adminAction{}, adminMalformed
		}
	default:
		return adminAction{}, adminUnsupported
	}
	id, ok := args[2].(string)
	if !ok || !rooms.IsSocketID(id) {
		return adminAction{}, adminUnknownSocket
	}
	act.socketID = id
	return act, ""
}

// request handles one of the UI's requests. They carry no
// acknowledgement: a refused request has no effect, is logged and counted
// in chatd_admin_requests_total.
func (a *admin) request(sock *socket.Socket, lim *rate.Limiter, name string, args []any) {
	count := func(result string) { a.requests.WithLabelValues(name, result).Inc() }
	if name != "emit" && name != "join" && name != "leave" && name != "_disconnect" {
		return
	}
	if !lim.Allow() {
		count(adminRateLimited)
		return
	}
	if a.cfg.ReadOnly {
		count(adminReadOnly)
		a.s.log.Info("admin: request refused in read-only mode", "request", name)
		return
	}
	act, refused := parseAdminRequest(name, args)
	if refused != "" {
		count(refused)
		a.s.log.Info("admin: request refused", "request", name, "reason", refused)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.s.cfg.RequestTimeout)
		defer cancel()
		result := a.apply(ctx, act)
		count(result)
		a.s.log.Info("admin: request", "request", name, "socket", act.socketID, "room", act.room, "result", result, "admin", string(sock.Id()))
	}()
}

// apply carries out a request the way the server API does the same: a
// join of a socket grants its user the room and makes the user a member
// (every socket of the user joins, as PUT /api/v1/rooms/{room}/members/{userId});
// a leave revokes the grant and ends the membership (DELETE of the same);
// a disconnect ends the socket's session the way DELETE
// /api/v1/connections/{socketId} does (the close flag is not used: the
// client is told, and does not reconnect by itself).
func (a *admin) apply(ctx context.Context, act adminAction) string {
	sock, err := a.s.delivery.FindSocket(ctx, act.socketID)
	if err != nil {
		return string(rooms.ErrorOf(err).Code)
	}
	if sock == nil {
		return adminUnknownSocket
	}
	u, _, ok := SocketUser(sock)
	if !ok {
		return adminUnknownSocket
	}
	switch act.name {
	case "join":
		if err = a.s.Grant(ctx, u.ID, act.room); err == nil {
			err = a.s.JoinUser(ctx, u, act.room)
		}
	case "leave":
		if err = a.s.Revoke(ctx, u.ID, act.room); err == nil {
			err = a.s.LeaveUser(ctx, u, act.room)
		}
	case "_disconnect":
		if err = a.s.CutOff(ctx, u.ID); err == nil {
			a.s.delivery.Disconnect(socket.Room(sock.Id()))
		}
	}
	if err != nil {
		return string(rooms.ErrorOf(err).Code)
	}
	return adminOK
}

// adminCountKey is one kind of aggregated event (the dashboard's
// histograms) in one second.
type adminCountKey struct {
	second  int64 // Unix seconds
	kind    string
	subType string
}

// count adds one aggregated event of kind now.
func (a *admin) count(kind, subType string) {
	k := adminCountKey{second: time.Now().Unix(), kind: kind, subType: subType}
	a.mu.Lock()
	if len(a.counts) < 10_000 {
		a.counts[k]++
	}
	a.mu.Unlock()
}

// takeCounts returns the aggregated events counted since the last call.
func (a *admin) takeCounts() []any {
	a.mu.Lock()
	counts := a.counts
	a.counts = make(map[adminCountKey]int)
	a.mu.Unlock()
	out := make([]any, 0, len(counts))
	for k, n := range counts {
		e := map[string]any{"timestamp": k.second * 1000, "type": k.kind, "count": n}
		if k.subType != "" {
			e["subType"] = k.subType
		}
		out = append(out, e)
	}
	return out
}

// stats is this instance's server_stats.
func (a *admin) stats() map[string]any {
	eng := a.s.io.Engine()
	polling := 0
	eng.Clients().Range(func(_ string, c engine.Socket) bool {
		if t := c.Transport(); t != nil && t.Name() == "polling" {
			polling++
		}
		return true
	})
	return map[string]any{
		"serverId":            a.s.cfg.InstanceID,
		"hostname":            a.hostname,
		"pid":                 os.Getpid(),
		"uptime":              time.Since(a.started).Seconds(),
		"clientsCount":        eng.ClientsCount(),
		"pollingClientsCount": polling,
		"namespaces": []any{
			map[string]any{"name": "/", "socketsCount": a.s.nsp.Sockets().Len()},
			map[string]any{"name": AdminNamespace, "socketsCount": a.nsp.Sockets().Len()},
		},
		"aggregatedEvents": a.takeCounts(),
	}
}
