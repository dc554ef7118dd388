package roomstest

import (
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
)

// TestGrants checks a [rooms.Grants]; newGrants makes a fresh, empty one.
func TestGrants(t *testing.T, newGrants func(t *testing.T) rooms.Grants) {
	ctx := t.Context()
	g := newGrants(t)
	has := func(user, room string) bool {
		t.Helper()
		ok, err := g.Has(ctx, user, room)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if has("alice", "team-red") {
		t.Fatal("an empty store has a grant")
	}
	for _, room := range []string{"team-red", "team-blue"} {
		if err := g.Grant(ctx, "alice", room); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Grant(ctx, "alice", "team-red"); err != nil {
		t.Fatal("a second grant:", err)
	}
	if !has("alice", "team-red") || !has("alice", "team-blue") || has("bob", "team-red") {
		t.Fatal("grants are not per user and room")
	}
	revokedAt := func(user, room string) time.Time {
		t.Helper()
		at, err := g.RevokedAt(ctx, user, room)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	if !revokedAt("alice", "team-red").IsZero() {
		t.Fatal("a room never revoked has a revoke time")
	}
	at := time.UnixMilli(time.Now().UnixMilli())
	if err := g.Revoke(ctx, "alice", "team-red", at); err != nil {
		t.Fatal(err)
	}
	if has("alice", "team-red") || !has("alice", "team-blue") {
		t.Fatal("a revoke ended another grant, or not its own")
	}
	if got := revokedAt("alice", "team-red"); !got.Equal(at) {
		t.Fatalf("RevokedAt = %v, want %v", got, at)
	}
	if !revokedAt("alice", "team-blue").IsZero() || !revokedAt("bob", "team-red").IsZero() {
		t.Fatal("revoke times are not per user and room")
	}
	if err := g.Grant(ctx, "alice", "team-red"); err != nil {
		t.Fatal(err)
	}
	if !has("alice", "team-red") || !revokedAt("alice", "team-red").IsZero() {
		t.Fatal("a grant after a revoke does not grant, or keeps the revoke time")
	}
	if err := g.Revoke(ctx, "carol", "team-red", at); err != nil {
		t.Fatal("revoking a grant that does not exist:", err)
	}
}

// TestCutoffs checks a [rooms.Cutoffs]; newCutoffs makes a fresh, empty one.
func TestCutoffs(t *testing.T, newCutoffs func(t *testing.T) rooms.Cutoffs) {
	ctx := t.Context()
	c := newCutoffs(t)
	since := func(user string) time.Time {
		t.Helper()
		at, err := c.Since(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	if !since("alice").IsZero() {
		t.Fatal("an empty store has a cutoff")
	}
	t1 := time.UnixMilli(time.Now().UnixMilli())
	if err := c.Cut(ctx, "alice", t1); err != nil {
		t.Fatal(err)
	}
	if got := since("alice"); !got.Equal(t1) {
		t.Fatalf("Since = %v, want %v", got, t1)
	}
	if err := c.Cut(ctx, "alice", t1.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := since("alice"); !got.Equal(t1) {
		t.Fatalf("an earlier cutoff replaced a later one: %v, want %v", got, t1)
	}
	if !since("bob").IsZero() {
		t.Fatal("cutoffs are not per user")
	}
}
