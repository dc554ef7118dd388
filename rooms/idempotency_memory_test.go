package rooms

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryIdempotencyBounds(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	s := NewMemoryIdempotency(time.Minute)
	s.now = func() time.Time { return now }
	s.maxEntries = 100
	for i := range 250 {
		key := fmt.Sprint("k", i)
		if _, claimed, _ := s.Claim(ctx, key); !claimed {
			t.Fatalf("claim %s refused", key)
		}
		_ = s.Complete(ctx, key, Message{ID: fmt.Sprint(i, "-0")})
	}
	if n := len(s.entries); n > 100 {
		t.Fatalf("%d entries kept, the limit is 100", n)
	}
	if prior, _, _ := s.Claim(ctx, "k249"); prior == nil || prior.ID != "249-0" {
		t.Fatalf("the newest send was forgotten: %+v", prior)
	}
	if prior, claimed, _ := s.Claim(ctx, "k0"); prior != nil || !claimed {
		t.Fatal("the oldest send is still remembered past the limit")
	}
	if len(s.order) > 4*100 {
		t.Fatalf("order grew to %d positions", len(s.order))
	}
	now = now.Add(2 * time.Minute)
	if _, claimed, _ := s.Claim(ctx, "fresh"); !claimed {
		t.Fatal("claim refused")
	}
	if n := len(s.entries); n != 1 {
		t.Fatalf("%d entries after they all expired, want only the new claim", n)
	}
}
