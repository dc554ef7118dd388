package rooms

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryHistoryExpiresAndFreesRooms(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	h := NewMemoryHistoryTTL(10, time.Hour)
	h.now = func() time.Time { return now }
	for i := range 100 {
		if _, err := h.Append(ctx, Message{Room: fmt.Sprintf("r%d", i), Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(30 * time.Minute)
	if _, err := h.Append(ctx, Message{Room: "r0", Text: "kept alive"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(31 * time.Minute) // r1..r99 are past the TTL, r0 is not
	p, err := h.Page(ctx, "r1", Query{Limit: 10})
	if err != nil || len(p.Messages) != 0 {
		t.Fatalf("expired room: %v %v, want empty", p.Messages, err)
	}
	p, _ = h.Page(ctx, "r0", Query{Limit: 10})
	if len(p.Messages) != 2 {
		t.Fatalf("room in use: %d messages, want 2", len(p.Messages))
	}
	if n := h.Len(); n != 1 {
		t.Fatalf("%d rooms held, want 1", n)
	}
	// Without a TTL nothing expires.
	forever := NewMemoryHistory(10)
	forever.now = func() time.Time { return now }
	_, _ = forever.Append(ctx, Message{Room: "a", Text: "x"})
	now = now.Add(1000 * time.Hour)
	if p, _ := forever.Page(ctx, "a", Query{Limit: 10}); len(p.Messages) != 1 {
		t.Fatal("a history without TTL expired")
	}
}
