package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// adminStatsInterval is how often every instance sends its server_stats;
// the UI marks a server unhealthy after 10 s without one.
const adminStatsInterval = 2 * time.Second

// maxAdminSockets bounds the sockets all_sockets lists, over the whole
// cluster, and the sockets one instance describes for it.
const maxAdminSockets = 5000

// adminSocketsRequest is the server-side event (between the instances'
// admin namespaces) that asks every instance for its sockets.
const adminSocketsRequest = "chatd:admin-sockets"

// adminEvent is one event for the connected UIs.
type adminEvent struct {
	name string
	args []any
}

// queue hands an event to the goroutine that sends them to the UIs, so
// that a socket's connect, join or leave never waits for them; when the
// queue is full the event is dropped and counted.
func (a *admin) queue(name string, args ...any) {
	select {
	case a.events <- adminEvent{name: name, args: args}:
	default:
		a.dropped.Inc()
	}
}

// run sends the queued events and, every adminStatsInterval, this
// instance's stats to the UIs of the whole cluster (the watchers room).
func (a *admin) run() {
	defer close(a.done)
	t := time.NewTicker(adminStatsInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case ev := <-a.events:
			_ = a.nsp.To(adminWatchers).Emit(ev.name, ev.args...)
		case <-t.C:
			_ = a.nsp.To(adminWatchers).Emit("server_stats", a.stats())
		}
	}
}

// watch counts Engine.IO connections and closes for the dashboard, and
// tells the UIs of this instance's chat sockets joining and leaving rooms.
func (a *admin) watch() {
	_ = a.s.io.Engine().On("connection", func(args ...any) {
		c, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		a.count("rawConnection", "")
		_ = c.On("close", func(args ...any) {
			reason, _ := firstArg(args).(string)
			a.count("rawDisconnection", reason)
		})
	})
	ad := a.s.nsp.Adapter()
	_ = ad.On("join-room", func(args ...any) { a.roomChanged("room_joined", args) })
	_ = ad.On("leave-room", func(args ...any) { a.roomChanged("room_left", args) })
}

func firstArg(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

// roomChanged tells the UIs that a socket they know joined or left a room.
func (a *admin) roomChanged(event string, args []any) {
	if len(args) < 2 {
		return
	}
	room, ok1 := args[0].(socket.Room)
	id, ok2 := args[1].(socket.SocketId)
	if !ok1 || !ok2 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, known := a.announced[id]; known {
		a.queue(event, "/", string(room), string(id), adminNow())
	}
}

// adminNow is an event's timestamp as the UI reads it.
func adminNow() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// announce tells the UIs of a chat socket that is set up (in its rooms,
// its session event sent), and then of its transport upgrade and its
// disconnection. Events of one socket are queued under a.mu, so they reach
// the UIs in order.
func (a *admin) announce(sock *socket.Socket) {
	id := sock.Id()
	_ = sock.On("disconnecting", func(args ...any) {
		reason, _ := firstArg(args).(string)
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, known := a.announced[id]; known {
			delete(a.announced, id)
			a.queue("socket_disconnected", "/", string(id), reason, adminNow())
		}
	})
	_ = sock.Conn().On("upgrade", func(...any) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, known := a.announced[id]; known {
			a.queue("socket_updated", map[string]any{"id": string(id), "nsp": "/", "transport": transportName(sock.Conn())})
		}
	})
	desc := a.describe(sock)
	a.mu.Lock()
	defer a.mu.Unlock()
	if sock.Connected() {
		a.announced[id] = struct{}{}
		a.queue("socket_connected", desc, adminNow())
	}
}

func transportName(c engine.Socket) string {
	if t := c.Transport(); t != nil {
		return t.Name()
	}
	return ""
}

// adminHiddenHeaders are left out of the handshakes the UI shows: they
// carry credentials.
var adminHiddenHeaders = map[string]bool{"authorization": true, "cookie": true, "proxy-authorization": true}

// describe is a chat socket as the UI lists it (SerializedSocket of
// @socket.io/admin-ui): its id, its client (a digest of the Engine.IO id,
// which is a secret of the connection), transport, data (user id, name,
// when it connected), the handshake without credentials (no auth, no
// cookie or authorization header, no token in the query) and its rooms.
func (a *admin) describe(sock *socket.Socket) map[string]any {
	u, at, _ := socketUser(sock.Data())
	sum := sha256.Sum256([]byte(sock.Conn().Id()))
	hs := sock.Handshake()
	headers := map[string]any{}
	for k, v := range hs.Headers {
		if !adminHiddenHeaders[strings.ToLower(k)] {
			headers[strings.ToLower(k)] = plainValue(v)
		}
	}
	query := map[string]any{}
	for k, v := range hs.Query {
		if !strings.Contains(strings.ToLower(k), "token") {
			query[k] = plainValue(v)
		}
	}
	url, _, _ := strings.Cut(hs.Url, "?")
	var roomList []any
	for _, r := range sock.Rooms().Keys() {
		roomList = append(roomList, string(r))
	}
	return map[string]any{
		"id":        string(sock.Id()),
		"clientId":  hex.EncodeToString(sum[:6]),
		"transport": transportName(sock.Conn()),
		"nsp":       "/",
		"data":      map[string]any{"userId": u.ID, "name": u.Name, "connectedAt": at},
		"handshake": map[string]any{
			"address": a.s.guard.socketAddr(sock),
			"headers": headers,
			"query":   query,
			"issued":  hs.Issued,
			"time":    hs.Time,
			"secure":  hs.Secure,
			"xdomain": hs.Xdomain,
			"url":     url,
		},
		"rooms": roomList,
	}
}

// plainValue turns a header or query value (a list of strings) into one
// string.
func plainValue(v any) any {
	switch v := v.(type) {
	case []string:
		return strings.Join(v, ", ")
	case []any:
		parts := make([]string, 0, len(v))
		for _, p := range v {
			if s, ok := p.(string); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ", ")
	default:
		return v
	}
}

// localSockets describes at most limit chat sockets of this instance that
// are set up.
func (a *admin) localSockets(limit int) []any {
	out := []any{}
	a.s.nsp.Sockets().Range(func(id socket.SocketId, sock *socket.Socket) bool {
		a.mu.Lock()
		_, known := a.announced[id]
		a.mu.Unlock()
		if known && sock.Connected() {
			out = append(out, a.describe(sock))
		}
		return len(out) < limit
	})
	return out
}

// answerSockets answers another instance's adminSocketsRequest with this
// instance's sockets.
func (a *admin) answerSockets(args ...any) {
	if len(args) == 0 {
		return
	}
	if ack, ok := args[len(args)-1].(socket.Ack); ok {
		ack([]any{a.localSockets(maxAdminSockets)}, nil)
	}
}

// clusterSockets lists the chat sockets of every instance, at most
// maxAdminSockets: this instance's, and in cluster mode those the other
// instances answer within the request time (an instance that does not
// answer in time is left out, and logged).
func (a *admin) clusterSockets(ctx context.Context) []any {
	out := a.localSockets(maxAdminSockets)
	if !a.s.clustered || len(out) >= maxAdminSockets {
		return out
	}
	type answer struct {
		lists []any
		err   error
	}
	ch := make(chan answer, 1)
	err := a.nsp.ServerSideEmitWithAck(adminSocketsRequest)(func(lists []any, err error) {
		select {
		case ch <- answer{lists, err}:
		default:
		}
	})
	if err != nil {
		a.s.log.Warn("admin: the other instances' sockets were not asked for", "err", err)
		return out
	}
	var ans answer
	select {
	case ans = <-ch:
	case <-ctx.Done():
		a.s.log.Warn("admin: the other instances did not list their sockets in time")
		return out
	}
	if ans.err != nil {
		a.s.log.Warn("admin: some instances did not list their sockets", "err", ans.err)
	}
	for _, l := range ans.lists {
		list, _ := l.([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				if id, _ := m["id"].(string); id != "" {
					out = append(out, m)
				}
			}
			if len(out) >= maxAdminSockets {
				return out
			}
		}
	}
	return out
}
