package redis

import (
	"context"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// A login saved on one instance's store is found by another's, and is gone
// once its TTL has passed.
func TestRedisAdminSessions(t *testing.T) {
	client := storeRedisServer(t)
	prefix := storeNewPrefix()
	a, err := NewRedisAdminSessions(client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedisAdminSessions(client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := b.Exists(ctx, "k1"); err != nil || ok {
		t.Fatalf("Exists before Save = %v, %v", ok, err)
	}
	if err := a.Save(ctx, "k1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Exists(ctx, "k1"); err != nil || !ok {
		t.Fatalf("Exists on the other instance = %v, %v, want true", ok, err)
	}
	if ttl := client.TTL(ctx, prefix+":admin:session:k1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the key's TTL is %v, want up to a minute", ttl)
	}
	if err := a.Save(ctx, "k2", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Redis expires the key by itself; ask until it is gone.
	testkit.Eventually(t, 5*time.Second, func() bool {
		ok, err := b.Exists(ctx, "k2")
		return err == nil && !ok
	}, "a login outlived its TTL")
	if err := a.Save(ctx, "", time.Minute); err == nil {
		t.Fatal("Save of an empty key succeeded")
	}
}
