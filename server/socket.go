package server

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/internal/socketio/wstransport"
	"github.com/chatd/chatd/protocol"
	"github.com/chatd/chatd/rooms"
)

// Socket data keys. chatd keeps plain values in a socket's data so that
// they survive connection state recovery and travel to other instances.
const (
	dataUserID      = "userId"
	dataName        = "name"
	dataConnectedAt = "connectedAt"
)

// userRoom is the socket.io room holding every socket of a user.
func userRoom(userID string) socket.Room { return socket.Room(rooms.UserRoomPrefix + userID) }

// authMiddleware authenticates a CONNECT; a refusal is a connect_error whose
// message is "unauthorized", with the reason in its data.
func (s *Server) authMiddleware(sock *socket.Socket, next func(*socket.ExtendedError)) {
	u, tok, err := s.auth.identify(sock.Handshake().Auth)
	if err != nil {
		s.log.Debug("connection refused", "reason", err.Error(), "address", sock.Handshake().Address)
		next(socket.NewExtendedError("unauthorized", map[string]any{"code": string(rooms.CodeUnauthorized), "message": authMessage(err)}))
		return
	}
	var ans hookAnswer
	if s.hooks.Connect != nil || s.cfg.AuthMode == AuthHook {
		var refused *socket.ExtendedError
		if u, ans, refused = s.connectHooks(sock, u); refused != nil {
			next(refused)
			return
		}
	}
	if refused := s.admitSocket(sock, u.ID); refused != nil {
		next(refused)
		return
	}
	now := time.Now()
	if refused := s.gatewayConnect(sock, now); refused != nil {
		next(refused)
		return
	}
	data := map[string]any{
		dataUserID:      u.ID,
		dataName:        u.Name,
		dataConnectedAt: now.UnixMilli(),
	}
	addTokenData(data, tok)
	addHookData(data, ans)
	sock.SetData(data)
	next(nil)
}

// authMessage is the sentence a refused client sees; token parser details
// stay in the log.
func authMessage(err error) string {
	var ae *authError
	if errors.As(err, &ae) {
		return ae.msg
	}
	var re *rooms.Error
	if errors.As(err, &re) {
		return re.Message
	}
	// The remaining refusals are chatd's own sentences (dev-mode checks).
	return err.Error()
}

// socketUser returns the user stored in a socket's data.
func socketUser(data any) (rooms.User, int64, bool) {
	m, ok := data.(map[string]any)
	if !ok {
		return rooms.User{}, 0, false
	}
	id, _ := m[dataUserID].(string)
	name, _ := m[dataName].(string)
	var at int64
	switch v := m[dataConnectedAt].(type) {
	case int64:
		at = v
	case float64:
		at = int64(v)
	case int:
		at = int64(v)
	case uint64:
		at = int64(min(v, math.MaxInt64)) //nolint:gosec // clamped to MaxInt64 first
	}
	return rooms.User{ID: id, Name: name}, at, id != ""
}

// floodCloseDelay is how long a disconnected flooder's transport stays open
// so that its last packets reach it, in time.
const floodCloseDelay = time.Second

// conn is the server's state of one connected socket.
type conn struct {
	s    *Server
	sock *socket.Socket
	user rooms.User
	addr string // the client address, counted by the guard

	limiter *rate.Limiter
	strikes []time.Time // rate_limited answers within rateStrikeWindow

	// The socket can drop while onConnection still waits for the stores
	// (disconnect runs on the transport's goroutine, setup on the socket's
	// queue); whichever of the two comes second undoes the presence record.
	mu       sync.Mutex // guards the following fields
	recorded bool       // presence holds this socket
	gone     bool       // the socket disconnected

	// disconnected is closed when the socket disconnects; disconnectSent
	// is set while a DISCONNECT from the client is on its way to the socket
	// (see awaitClientDisconnect).
	disconnected   chan struct{}
	disconnectSent atomic.Bool

	// gatewayIn is set once API Gateway's $connect let the socket in, so
	// that its $disconnect follows.
	gatewayIn atomic.Bool
}

// noteClientDisconnect is a listener of the Engine.IO connection's packets,
// which run before the library reads them: it notes a socket.io DISCONNECT
// for the socket's namespace, which awaitClientDisconnect then waits for.
func (c *conn) noteClientDisconnect(args ...any) {
	p, ok := args[0].(*packet.Packet)
	if !ok || p == nil || p.Type != packet.MESSAGE {
		return
	}
	b, ok := p.Data.(*types.StringBuffer)
	if !ok {
		return
	}
	if d := b.Bytes(); string(d) == "1" || bytes.HasPrefix(d, []byte("1/,")) {
		c.disconnectSent.Store(true)
	}
}

// awaitClientDisconnect is a listener of the Engine.IO connection's data,
// which runs after the library's: when the data was a socket.io DISCONNECT
// (see noteClientDisconnect), it holds the connection's reader until the
// socket has handled it.
//
// The library (v3.0.6, client.go ondecoded) queues a DISCONNECT behind the
// socket's other packets, but handles the close of the connection at once
// (Client.onclose): a DISCONNECT followed quickly by the close, as
// socket.io-client sends on disconnect(), was taken as a "transport close",
// which connection state recovery restores (the same socket id, even for
// another user after a log-out and log-in). socket.io never restores a
// namespace disconnect. Holding the reader here, once the library has
// queued the DISCONNECT, makes the close come after it, as in socket.io: the
// requests sent before it are answered and the reason is "client namespace
// disconnect". The hold is bounded by the request timeout plus a second.
func (c *conn) awaitClientDisconnect(...any) {
	if !c.disconnectSent.Swap(false) || !c.sock.Connected() {
		return
	}
	t := time.NewTimer(c.s.cfg.RequestTimeout + time.Second)
	defer t.Stop()
	select {
	case <-c.disconnected:
	case <-t.C:
	}
}

func (s *Server) onConnection(sock *socket.Socket) {
	u, _, ok := socketUser(sock.Data())
	if !ok {
		releaseConnect(sock)
		sock.Disconnect(true)
		return
	}
	c := &conn{
		s:            s,
		sock:         sock,
		user:         u,
		limiter:      rate.NewLimiter(rate.Limit(s.cfg.EventsPerSecond), s.cfg.EventBurst),
		disconnected: make(chan struct{}),
	}
	// Before the CONNECT acknowledgement reaches a WebSocket client (see
	// ReleaseConnect below), so that no DISCONNECT of its can come first.
	engineConn := sock.Conn()
	_ = engineConn.On("packet", c.noteClientDisconnect)
	_ = engineConn.On("data", c.awaitClientDisconnect)
	releaseConnect(sock)
	s.metrics.sockets.Inc()
	s.sockets.Add(1)
	s.trackUser(u.ID, 1)
	c.addr = s.guard.socketAddr(sock)
	s.guard.trackAddr(c.addr, 1)
	sock.OnAny(c.onEvent)
	_ = sock.On("disconnect", func(args ...any) {
		reason, _ := args[0].(string)
		s.log.Debug("socket disconnected", "user", u.ID, "socket", string(sock.Id()), "reason", reason)
		c.onDisconnect(reason)
	})
	if !sock.Connected() {
		// It dropped before the listener was in place.
		c.onDisconnect("transport close")
		return
	}
	if s.hooks.Gateway != nil {
		if sock.Recovered() {
			// The handler saw this connection's $disconnect when it dropped;
			// recovery skips the middleware that sent $connect.
			_, at, _ := socketUser(sock.Data())
			if err := s.hooks.Gateway.Connect(context.Background(), s.gatewayConn(sock, time.UnixMilli(at), true)); err != nil {
				s.log.Debug("recovered socket refused by $connect", "user", u.ID, "err", err)
				sock.Disconnect(true)
				return
			}
		}
		c.gatewayIn.Store(true)
	}
	c.watchExpiry()

	// Join the user's own room first: a join or leave from another tab that
	// lands after this point reaches this socket through that room, so the
	// rooms read below cannot miss one.
	sock.Join(userRoom(u.ID))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	first, memberOf, err := s.chat.Connect(ctx, u, string(sock.Id()))
	if err != nil {
		// Without its rooms the socket would miss messages silently. Close
		// the transport so that the client retries by itself.
		s.log.Warn("socket setup failed; closing it so the client retries", "user", u.ID, "err", err)
		// On its own goroutine: a recovered socket is set up inside the
		// polling request that carried its CONNECT, which holds the lock.
		go s.closeConn(sock.Conn(), closeSetup)
		return
	}
	c.mu.Lock()
	c.recorded = true
	gone := c.gone
	c.mu.Unlock()
	if gone {
		// Disconnected during setup: onDisconnect left the record to us.
		c.forget()
		return
	}
	memberOf = joinableRooms(memberOf)
	want := make(map[socket.Room]bool, len(memberOf))
	joinRooms := make([]socket.Room, 0, len(memberOf))
	for _, r := range memberOf {
		want[socket.Room(r)] = true
		joinRooms = append(joinRooms, socket.Room(r))
	}
	if sock.Recovered() {
		// The membership may have changed while the socket was away.
		for _, r := range sock.Rooms().Keys() {
			if r != socket.Room(sock.Id()) && r != userRoom(u.ID) && !want[r] {
				sock.Leave(r)
			}
		}
	}
	if len(joinRooms) > 0 {
		sock.Join(joinRooms...)
		memberOf = s.leaveRoomsLeftMeanwhile(ctx, sock, u.ID, memberOf)
	}
	// In cluster mode, wait until this instance receives the other
	// instances' broadcasts to the socket's rooms, so that nothing sent
	// after the session event is missed.
	s.waitRoomsReady(ctx, sock)
	// Counted before it is sent, as every emitted event: a client that has
	// it and then reads /metrics finds it counted.
	s.metrics.eventsOut.WithLabelValues("session").Inc()
	session := map[string]any{
		"userId":    u.ID,
		"name":      u.Name,
		"socketId":  string(sock.Id()),
		"rooms":     memberOf,
		"recovered": sock.Recovered(),
	}
	if d := c.hookUser().Data; d != nil {
		session["data"] = d
	}
	_ = sock.Emit("session", session)
	if s.admin != nil {
		s.admin.announce(sock)
	}
	if first {
		s.publishUser(events.UserOnline, u, "")
		s.delivery.Announce(u, memberOf, "online")
	}
}

// releaseConnect lets the socket's CONNECT acknowledgement go to a WebSocket
// client: the library has recorded the socket as connected by now (see
// wstransport.Transport.hold).
func releaseConnect(sock *socket.Socket) {
	if t, ok := sock.Conn().Transport().(*wstransport.Transport); ok {
		t.ReleaseConnect()
	}
}

// leaveRoomsLeftMeanwhile reads the user's rooms again after a new socket
// joined joined, takes the socket out of those the user has left since, and
// returns the rest. A leave from another tab whose store change came after
// the first read, but whose socket change came before the new socket joined,
// missed it. (A join cannot be missed: it reaches the socket through its
// user room, which the socket joined before the first read.)
func (s *Server) leaveRoomsLeftMeanwhile(ctx context.Context, sock *socket.Socket, userID string, joined []string) []string {
	now, err := s.chat.Rooms(ctx, userID)
	if err != nil {
		s.log.Warn("socket rooms not checked again after joining them", "user", userID, "err", err)
		return joined
	}
	kept := make([]string, 0, len(joined))
	for _, r := range joined {
		if slices.Contains(now, r) {
			kept = append(kept, r)
		} else {
			sock.Leave(socket.Room(r))
		}
	}
	return kept
}

// onDisconnect runs once, when the socket is gone for reason.
func (c *conn) onDisconnect(reason string) {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	c.gone = true
	recorded := c.recorded
	c.mu.Unlock()
	close(c.disconnected)
	c.sock.Conn().RemoveListener("packet", c.noteClientDisconnect)
	c.sock.Conn().RemoveListener("data", c.awaitClientDisconnect)
	c.stopExpiry()
	c.s.metrics.sockets.Dec()
	c.s.sockets.Add(-1)
	c.s.trackUser(c.user.ID, -1)
	c.s.guard.trackAddr(c.addr, -1)
	if c.gatewayIn.Load() {
		c.s.hooks.Gateway.Disconnect(c.gatewayConn(), disconnectStatus(reason), reason)
	}
	if recorded {
		c.forget()
	}
}

// forget removes the socket from presence and announces the user offline
// when it was the user's last socket anywhere.
func (c *conn) forget() {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	last, memberOf, err := s.chat.Disconnect(ctx, c.user.ID, string(c.sock.Id()))
	if err != nil {
		s.logFailure("presence update failed on disconnect", "user", c.user.ID, "err", err)
		return
	}
	if last {
		s.publishUser(events.UserOffline, c.user, offlineDisconnected)
		s.delivery.Announce(c.user, memberOf, "offline")
	}
}

// trackUser counts the sockets of each user on this instance.
func (s *Server) trackUser(userID string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.users[userID] + delta
	if n <= 0 {
		delete(s.users, userID)
	} else {
		s.users[userID] = n
	}
	s.metrics.users.Set(float64(len(s.users)))
}

// onEvent handles every event of the socket. It runs on the socket's own
// task queue, so one socket's requests are handled one after the other, in
// the order they were sent.
func (c *conn) onEvent(args ...any) {
	if len(args) == 0 {
		return
	}
	// The library calls this on a goroutine it started for the socket's
	// packets, with the smallest stack; the store calls below would grow it
	// by copying, event after event. A warm worker runs the event instead,
	// while this goroutine waits, so the socket's events keep their order.
	c.s.handlers.Run(func() { c.handle(args) })
}

// handle answers one event from the client.
func (c *conn) handle(args []any) {
	ev, _ := args[0].(string)
	args = args[1:]
	var ack socket.Ack
	if n := len(args); n > 0 {
		if fn, ok := args[n-1].(socket.Ack); ok {
			ack = fn
			args = args[:n-1]
		}
	}
	s := c.s
	if !c.sock.Connected() {
		return // a flooder that was just disconnected
	}
	s.metrics.eventsIn.WithLabelValues(eventLabel(ev)).Inc()
	if !c.allow() {
		s.metrics.rateLimited.Inc()
		c.reply(ev, ack, nil, rooms.Errorf(rooms.CodeRateLimited, "too many requests; slow down to %g per second", s.cfg.EventsPerSecond))
		return
	}
	if err := s.guard.allowUser(c.user.ID); err != nil {
		s.metrics.rateLimited.Inc()
		c.reply(ev, ack, nil, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	var res map[string]any
	var err error
	switch ev {
	case protocol.EventJoin:
		res, err = c.join(ctx, args)
	case protocol.EventLeave:
		res, err = c.leave(ctx, args)
	case protocol.EventMessage:
		res, err = c.message(ctx, args)
	case protocol.EventTyping:
		res, err = c.typing(args)
	case protocol.EventHistory:
		res, err = c.history(ctx, args)
	case protocol.EventRooms:
		res, err = c.rooms(ctx, args)
	case protocol.EventPresence:
		res, err = c.presence(ctx, args)
	case protocol.EventSync:
		res, err = c.sync(ctx, args)
	case protocol.EventRefresh:
		res, err = c.refresh(args)
	case protocol.EventRPC:
		res, err = c.rpc(ctx, args)
	case "":
		err = rooms.Errorf(rooms.CodeBadRequest, "the event needs a name")
	default:
		if s.hooks.Gateway != nil {
			res, err = c.gatewayDefault(ctx, ev, args)
			break
		}
		// protocol.Requests lists exactly the cases above.
		err = rooms.Errorf(rooms.CodeBadRequest, "unknown event %q; chatd knows %s", truncate(ev, 64), protocol.RequestList())
	}
	c.reply(ev, ack, res, err)
}

// reply sends the acknowledgement of one request, when the client asked for
// one, and counts it.
func (c *conn) reply(ev string, ack socket.Ack, res map[string]any, err error) {
	e := rooms.ErrorOf(err)
	c.s.metrics.acks.WithLabelValues(eventLabel(ev), codeLabel(e)).Inc()
	if e != nil && (e.Code == rooms.CodeInternal || e.Code == rooms.CodeUnavailable) {
		c.s.logFailure("request failed", "event", eventLabel(ev), "user", c.user.ID, "code", e.Code, "err", err)
	}
	if ack == nil {
		return
	}
	if e != nil {
		ack([]any{map[string]any{"ok": false, "error": map[string]any{"code": string(e.Code), "message": e.Message}}}, nil)
		return
	}
	if res == nil {
		res = make(map[string]any, 1)
	}
	res["ok"] = true
	ack([]any{res}, nil)
}

// allow applies the socket's rate limit. A socket that keeps sending after
// RateStrikes refusals within rateStrikeWindow is disconnected.
func (c *conn) allow() bool {
	if c.limiter.Allow() {
		return true
	}
	now := time.Now()
	keep := c.strikes[:0]
	for _, t := range c.strikes {
		if now.Sub(t) < rateStrikeWindow {
			keep = append(keep, t)
		}
	}
	c.strikes = append(keep, now)
	if len(c.strikes) > c.s.cfg.RateStrikes {
		c.s.log.Info("disconnecting a socket that keeps flooding", "user", c.user.ID, "socket", string(c.sock.Id()))
		// The DISCONNECT packet goes out after the acks already written, so
		// the client learns why (io server disconnect) and does not
		// reconnect by itself; the transport is closed a little later in
		// case the client ignores the packet.
		conn := c.sock.Conn()
		c.sock.Disconnect(false)
		time.AfterFunc(floodCloseDelay, func() { c.s.closeConn(conn, closeFlooding) })
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
