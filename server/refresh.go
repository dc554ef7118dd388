package server

import (
	"maps"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/rooms"
)

// expiryTimers holds the timer of each socket whose token has an exp: it
// disconnects the socket then, unless a refresh moved it.
type expiryTimers struct {
	mu     sync.Mutex                      // guards the following field
	timers map[socket.SocketId]*time.Timer // socket id -> its expiry
}

func newExpiryTimers() *expiryTimers {
	return &expiryTimers{timers: make(map[socket.SocketId]*time.Timer)}
}

// tokenExp returns the exp of the socket's token, and whether it has one.
func (c *conn) tokenExp() (time.Time, bool) {
	m, _ := c.sock.Data().(map[string]any)
	exp, ok := unixSeconds(m[dataExp])
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(exp, 0), true
}

// watchExpiry (re)starts the timer that disconnects the socket when its
// token expires (exp plus auth.jwt.leeway). A socket whose token has no
// exp is never disconnected for it.
func (c *conn) watchExpiry() {
	t := c.s.access.expiries
	id := c.sock.Id()
	exp, ok := c.tokenExp()
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.timers[id]; old != nil {
		old.Stop()
		delete(t.timers, id)
	}
	if !ok {
		return
	}
	at := exp.Add(c.s.auth.leeway)
	t.timers[id] = time.AfterFunc(time.Until(at), func() {
		if exp, ok := c.tokenExp(); ok && time.Now().Before(exp.Add(c.s.auth.leeway)) {
			return // refreshed meanwhile; the refresh set a new timer
		}
		c.s.log.Debug("disconnecting a socket whose token expired", "user", c.user.ID, "socket", string(id))
		// A server-side disconnect: the client sees "io server disconnect",
		// does not reconnect by itself, and its session is not kept for
		// recovery.
		c.sock.Disconnect(false)
	})
}

// stopExpiry stops the socket's expiry timer, when it is gone.
func (c *conn) stopExpiry() {
	t := c.s.access.expiries
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.timers[c.sock.Id()]; old != nil {
		old.Stop()
		delete(t.timers, c.sock.Id())
	}
}

// refresh answers refresh {token}: a valid new token of the same user
// replaces the socket's token (its exp and its allowed_rooms claim), so
// that the socket stays connected past the old exp. It answers the new exp
// in Unix seconds, null for a token without one.
func (c *conn) refresh(args []any) (map[string]any, error) {
	p, err := decodePayload(args)
	if err != nil {
		return nil, err
	}
	raw, err := p.str("token", true)
	if err != nil {
		return nil, err
	}
	a := c.s.auth
	if a.mode != AuthJWT {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "refresh takes a JWT, and this server is in %s mode, where tokens are not used", a.mode)
	}
	cl, err := a.parse(raw, a.parser)
	if err != nil {
		return nil, &rooms.Error{Code: rooms.CodeUnauthorized, Message: authMessage(err), Err: err}
	}
	u, err := a.userOf(cl)
	if err != nil {
		return nil, &rooms.Error{Code: rooms.CodeUnauthorized, Message: authMessage(err), Err: err}
	}
	if u.ID != c.user.ID {
		return nil, rooms.Errorf(rooms.CodeForbidden, "the token is for another user; a refresh keeps the socket's user")
	}
	old, _ := c.sock.Data().(map[string]any)
	data := maps.Clone(old)
	if data == nil {
		data = map[string]any{}
	}
	delete(data, dataExp)
	delete(data, dataIat)
	if cl.IssuedAt != nil {
		data[dataIat] = cl.IssuedAt.Unix()
	}
	var exp any
	if cl.ExpiresAt != nil {
		data[dataExp] = cl.ExpiresAt.Unix()
		exp = cl.ExpiresAt.Unix()
	}
	if len(cl.AllowedRooms) > 0 {
		data[dataAllowedRooms] = append([]string(nil), cl.AllowedRooms...)
	} else {
		delete(data, dataAllowedRooms)
	}
	c.sock.SetData(data)
	c.watchExpiry()
	return map[string]any{"exp": exp}, nil
}
