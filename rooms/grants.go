package rooms

import (
	"context"
	"time"
)

// Grants records which users the backend granted which rooms, through the
// server API (PUT /api/v1/rooms/{room}/members/{userId}). A grant lets the
// user join a room whose policy is granted; it outlives every connection,
// like a membership, and ends with a revoke.
type Grants interface {
	// Grant lets userID join room, and forgets an earlier revoke.
	Grant(ctx context.Context, userID, room string) error
	// Revoke ends the grant and records when (at), so that tokens issued
	// before it no longer admit the user; revoking a grant that does not
	// exist is not an error.
	Revoke(ctx context.Context, userID, room string, at time.Time) error
	// Has reports whether userID holds a grant of room.
	Has(ctx context.Context, userID, room string) (bool, error)
	// RevokedAt returns when room was last revoked from userID (since its
	// last grant), the zero time when never.
	RevokedAt(ctx context.Context, userID, room string) (time.Time, error)
}

// Cutoffs records when the server API last disconnected each user, so that
// a session of the user that was dropped before (and kept for connection
// state recovery) is not resumed afterwards.
type Cutoffs interface {
	// Cut records that userID was disconnected at t.
	Cut(ctx context.Context, userID string, t time.Time) error
	// Since returns when userID was last disconnected by the API, the zero
	// time when never (or longer ago than the store keeps it).
	Since(ctx context.Context, userID string) (time.Time, error)
}

// Members lists the members of room, with the names of those online (the
// others have Name empty), sorted by user id.
func (c *Chat) Members(ctx context.Context, room string) ([]User, error) {
	if err := ValidateRoom(room); err != nil {
		return nil, err
	}
	ids, err := c.st.Membership.Members(ctx, room)
	if err != nil {
		return nil, Unavailable(err)
	}
	online, err := c.st.Presence.Online(ctx, ids)
	if err != nil {
		return nil, Unavailable(err)
	}
	names := make(map[string]string, len(online))
	for _, u := range online {
		names[u.ID] = u.Name
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		out = append(out, User{ID: id, Name: names[id]})
	}
	return out, nil
}
