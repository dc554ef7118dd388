package rooms

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A user who floods the store with clientMsgIds pushes out only its own
// oldest sends; another user's send is still remembered for its retry.
func TestMemoryIdempotencyPerUserBound(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryIdempotency(time.Hour)
	s.maxPerUser = 10
	complete := func(user, id string) string {
		key := idempotencyKey("room", user, id)
		if _, claimed, err := s.Claim(ctx, key); err != nil || !claimed {
			t.Fatalf("claim %s: %v %v", key, claimed, err)
		}
		if err := s.Complete(ctx, key, Message{ID: "1-0", Room: "room", UserID: user}); err != nil {
			t.Fatal(err)
		}
		return key
	}
	victim := complete("bob", "retry-me")
	var flood []string
	for i := range 50 {
		flood = append(flood, complete("mallory\x00x", fmt.Sprint(i)))
	}
	if prior, _, _ := s.Claim(ctx, victim); prior == nil {
		t.Fatal("another user's send was forgotten")
	}
	if prior, _, _ := s.Claim(ctx, flood[len(flood)-1]); prior == nil {
		t.Fatal("the flooder's newest send was forgotten")
	}
	if _, claimed, _ := s.Claim(ctx, flood[0]); !claimed {
		t.Fatal("the flooder's oldest send is still remembered past its bound")
	}
	if n := s.perUser.n[keyUser(flood[0])]; n > 11 {
		t.Fatalf("the flooder holds %d entries, want at most its bound", n)
	}
	if got := keyUser(idempotencyKey("r", "a\x00b", "c")); got != "a\x00\x00b" {
		t.Fatalf("keyUser = %q", got)
	}
}
