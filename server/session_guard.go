package server

import (
	"context"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// sessionGuardBuilder wraps the adapter constructor so that a dropped
// session is resumed (socket.io connection state recovery, which skips the
// auth middleware) only while the token it authenticated with is valid and
// the server API has not disconnected its user since. Otherwise the client
// gets a fresh session, whose CONNECT goes through the auth middleware.
type sessionGuardBuilder struct {
	inner socket.AdapterConstructor
	s     *Server
}

// New implements socket.AdapterConstructor.
func (b sessionGuardBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := b.inner.New(nsp)
	g := sessionGuard{Adapter: a, s: b.s}
	if ms, ok := a.(MembershipSync); ok {
		return &syncSessionGuard{sessionGuard: g, ms: ms}
	}
	return &g
}

// sessionGuard is an adapter whose RestoreSession refuses stale sessions.
type sessionGuard struct {
	socket.Adapter
	s *Server
}

// RestoreSession takes the session from the wrapped adapter (so that it is
// used up either way) and hands it on only while it may be resumed.
func (g *sessionGuard) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	sess, err := g.Adapter.RestoreSession(pid, offset)
	if err != nil || sess == nil {
		return sess, err
	}
	if !g.s.mayResume(sess.Data) {
		return nil, nil
	}
	return sess, nil
}

// syncSessionGuard is a sessionGuard over an adapter that is a
// MembershipSync (the cluster adapter), which it stays.
type syncSessionGuard struct {
	sessionGuard
	ms MembershipSync
}

func (g *syncSessionGuard) AddSocketsWait(ctx context.Context, opts *socket.BroadcastOptions, rooms []socket.Room) error {
	return g.ms.AddSocketsWait(ctx, opts, rooms)
}

func (g *syncSessionGuard) DelSocketsWait(ctx context.Context, opts *socket.BroadcastOptions, rooms []socket.Room) error {
	return g.ms.DelSocketsWait(ctx, opts, rooms)
}

func (g *syncSessionGuard) WaitSubscribed(ctx context.Context, rooms []socket.Room) error {
	return g.ms.WaitSubscribed(ctx, rooms)
}

// PrepareStored hands a message's broadcast from inside the store's script
// to the cluster adapter, when it can do that (see storedBroadcaster).
func (g *syncSessionGuard) PrepareStored(data []any, idArg int, opts *socket.BroadcastOptions, onStored func(id string)) any {
	sb, ok := g.Adapter.(storedBroadcaster)
	if !ok {
		return nil
	}
	return sb.PrepareStored(data, idArg, opts, onStored)
}

var (
	_ MembershipSync    = (*syncSessionGuard)(nil)
	_ storedBroadcaster = (*syncSessionGuard)(nil)
)

// mayResume reports whether a dropped session with the socket data data
// may be resumed: its token (jwt mode) has not expired and the server API
// has not disconnected its user since the socket authenticated.
func (s *Server) mayResume(data any) bool {
	m, ok := data.(map[string]any)
	if !ok {
		return false
	}
	userID, _ := m[dataUserID].(string)
	if userID == "" {
		return false
	}
	if exp, ok := unixSeconds(m[dataExp]); ok && !time.Now().Before(time.Unix(exp, 0).Add(s.auth.leeway)) {
		s.log.Debug("session not resumed: its token expired", "user", userID)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	cut, err := s.access.cutoffs.Since(ctx, userID)
	if err != nil {
		// Unknown: a fresh session is always safe.
		s.log.Warn("session not resumed: the API disconnects of its user could not be read", "user", userID, "err", err)
		return false
	}
	authAt := timeOfMillis(m[dataAuthAt])
	if !cut.IsZero() && !authAt.After(cut) {
		s.log.Debug("session not resumed: the server API disconnected its user since", "user", userID)
		return false
	}
	return true
}

// cutOff records that the server API disconnected userID now, so that no
// session of the user dropped before is resumed.
func (s *Server) cutOff(ctx context.Context, userID string) error {
	return s.access.cutoffs.Cut(ctx, userID, time.Now())
}
