package server

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/chatd/chatd/rooms"
)

// access is what decides who may be where: the room policies, the grants
// of the server API and the cutoffs of its disconnects.
type access struct {
	policies *rooms.Policies
	grants   rooms.Grants
	cutoffs  rooms.Cutoffs
	expiries *expiryTimers // refresh.go
}

func newAccess(cfg Config, deps Deps) access {
	a := access{policies: cfg.RoomPolicies, grants: deps.Grants, cutoffs: deps.Cutoffs, expiries: newExpiryTimers()}
	if a.policies == nil {
		a.policies, _ = rooms.NewPolicies(nil) // every room open
	}
	if a.grants == nil {
		a.grants = rooms.NewMemoryGrants()
	}
	if a.cutoffs == nil {
		a.cutoffs = rooms.NewMemoryCutoffs(cfg.RecoveryMaxDisconnection)
	}
	return a
}

// Socket data keys of the token a socket authenticated with (jwt mode).
const (
	// dataExp is the token's exp in Unix seconds; absent when it has none.
	dataExp = "exp"
	// dataAllowedRooms is the token's allowed_rooms claim, a list of room
	// patterns.
	dataAllowedRooms = "allowedRooms"
	// dataAuthAt is when the socket authenticated, in Unix milliseconds.
	dataAuthAt = "authAt"
	// dataIat is the token's iat in Unix seconds; absent when it has none.
	dataIat = "iat"
)

// joinableRooms drops from a user's stored rooms the names that are no
// longer valid room names (such as one of the shape of a socket id, stored
// before those were reserved): a socket put in such a room would receive
// what is sent to another socket.
func joinableRooms(names []string) []string {
	out := names[:0:0]
	for _, r := range names {
		if rooms.ValidateRoom(r) == nil {
			out = append(out, r)
		}
	}
	if len(out) == len(names) {
		return names
	}
	return out
}

// directMember reports whether userID is one of the users a direct room's
// name lists.
func (a access) directMember(room, userID string) bool {
	ids, ok := a.policies.DirectUsers(room)
	return ok && slices.Contains(ids, userID)
}

func notDirectMember(room string) error {
	return rooms.Errorf(rooms.CodeForbidden, "room %q is a direct conversation; only the users its name lists may be in it", room)
}

// allowJoin applies the room's policy to a join request (args still holds
// its optional join token).
func (c *conn) allowJoin(ctx context.Context, room string, args []any) error {
	a := c.s.access
	policy, _ := a.policies.For(room)
	switch policy {
	case rooms.PolicyDirect:
		if !a.directMember(room, c.user.ID) {
			return notDirectMember(room)
		}
		return nil
	case rooms.PolicyGranted:
		return c.allowGranted(ctx, room, args)
	}
	return nil
}

// allowGranted lets a user into a granted room with a grant of the server
// API, a matching allowed_rooms claim or a join token for the room.
func (c *conn) allowGranted(ctx context.Context, room string, args []any) error {
	if rooms.MatchAny(c.allowedRooms(), room) {
		m, _ := c.sock.Data().(map[string]any)
		iat, _ := unixSeconds(m[dataIat])
		if err := c.issuedAfterRevoke(ctx, room, time.Unix(iat, 0), iat != 0); err == nil {
			return nil
		} else if rooms.ErrorOf(err).Code == rooms.CodeUnavailable {
			return err
		}
	}
	if raw := joinTokenOf(args); raw != "" {
		iat, err := c.s.auth.checkJoinToken(raw, c.user.ID, room)
		if err != nil {
			return err
		}
		return c.issuedAfterRevoke(ctx, room, iat, !iat.IsZero())
	}
	ok, err := c.s.access.grants.Has(ctx, c.user.ID, room)
	if err != nil {
		return rooms.Unavailable(err)
	}
	if !ok {
		return rooms.Errorf(rooms.CodeForbidden, "room %q is open to granted users only; ask for access, or join with a join token", room)
	}
	return nil
}

// allowPost applies the room's policy to a message from a socket.
func (c *conn) allowPost(room string) error {
	a := c.s.access
	switch policy, _ := a.policies.For(room); policy {
	case rooms.PolicyReadonly:
		return rooms.Errorf(rooms.CodeForbidden, "room %q is read-only; only the server API posts in it", room)
	case rooms.PolicyDirect:
		if !a.directMember(room, c.user.ID) {
			return notDirectMember(room)
		}
	}
	return nil
}

// allowRead applies the room's policy to a history or presence request:
// members only under every policy but open (where history is members only
// anyway and presence is answered to anyone).
func (c *conn) allowRead(ctx context.Context, room string, presence bool) error {
	a := c.s.access
	policy, _ := a.policies.For(room)
	if policy == rooms.PolicyOpen {
		return nil
	}
	if policy == rooms.PolicyDirect && !a.directMember(room, c.user.ID) {
		return notDirectMember(room)
	}
	if !presence {
		return nil // Chat.History checks the membership
	}
	member, err := c.s.chat.IsMember(ctx, c.user.ID, room)
	if err != nil {
		return err
	}
	if !member {
		return rooms.Errorf(rooms.CodeForbidden, "join room %q to see who is in it", room)
	}
	return nil
}

// allowedRooms returns the allowed_rooms claim of the socket's token.
func (c *conn) allowedRooms() []string {
	m, _ := c.sock.Data().(map[string]any)
	fromHook := stringList(m[dataHookAllowedRooms])
	if len(fromHook) == 0 {
		return stringList(m[dataAllowedRooms])
	}
	return append(stringList(m[dataAllowedRooms]), fromHook...)
}

// stringList reads a list of strings from socket data, which may have
// travelled through another instance or a recovered session as []any.
func stringList(v any) []string {
	switch xs := v.(type) {
	case []string:
		return xs
	case []any:
		out := make([]string, 0, len(xs))
		for _, x := range xs {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// unixSeconds reads a number of socket data as an int64.
func unixSeconds(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		return int64(n), true
	case int:
		return int64(n), true
	case uint64:
		return int64(min(n, math.MaxInt64)), true //nolint:gosec // clamped to MaxInt64 first
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// joinTokenOf returns the optional token field of a join request.
func joinTokenOf(args []any) string {
	if len(args) == 0 {
		return ""
	}
	m, _ := args[0].(map[string]any)
	s, _ := m["token"].(string)
	return s
}

// timeOfMillis reads Unix milliseconds of socket data as a time.
func timeOfMillis(v any) time.Time {
	ms, ok := unixSeconds(v)
	if !ok {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// issuedAfterRevoke lets a token (an allowed_rooms claim or a join token)
// admit the user to room only when the server API has not revoked the
// room from the user, or did so before the token was issued (iat); a token
// without iat does not beat a revoke.
func (c *conn) issuedAfterRevoke(ctx context.Context, room string, iat time.Time, hasIat bool) error {
	revoked, err := c.s.access.grants.RevokedAt(ctx, c.user.ID, room)
	if err != nil {
		return rooms.Unavailable(err)
	}
	if revoked.IsZero() || (hasIat && iat.After(revoked)) {
		return nil
	}
	return rooms.Errorf(rooms.CodeForbidden, "room %q was taken from you after your token was issued; ask for a new one", room)
}
