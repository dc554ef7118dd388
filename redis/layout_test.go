package redis

import (
	"errors"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

func TestRedisLayout(t *testing.T) {
	storeLayoutScenario(t, storeRedisServer(t))
}

// storeLayoutScenario checks CheckLayout on client's Redis: fresh keys get
// the version, keys of the old layout are refused until they are gone, and
// an unknown version is refused.
func storeLayoutScenario(t *testing.T, client goredis.UniversalClient) {
	ctx := t.Context()
	// Stores in use on prefixes of their own, so that the scan sees keys
	// of the new layout and of other prefixes.
	st := storeNewStores(t, client, "layout-other")
	if _, err := st.Membership.Join(ctx, "alice", "lobby", 10); err != nil {
		t.Fatal(err)
	}

	t.Run("fresh", func(t *testing.T) {
		prefix := storeNewPrefix()
		for range 2 {
			if err := CheckLayout(ctx, client, prefix); err != nil {
				t.Fatalf("CheckLayout of an empty prefix: %v", err)
			}
		}
		if v, err := client.Get(ctx, layoutKey(prefix)).Result(); err != nil || v != "2" {
			t.Fatalf("%s = %q (%v), want \"2\"", layoutKey(prefix), v, err)
		}
	})

	for _, old := range []struct {
		name  string
		write func(prefix string) (string, error)
	}{
		{"membership", func(prefix string) (string, error) {
			k := prefix + ":{membership}:user:alice"
			return k, client.SAdd(ctx, k, "lobby").Err()
		}},
		{"history", func(prefix string) (string, error) {
			k := prefix + ":history:lobby"
			return k, client.XAdd(ctx, &goredis.XAddArgs{Stream: k, Values: []string{"m", "{}"}}).Err()
		}},
		{"idempotency", func(prefix string) (string, error) {
			k := prefix + ":idempotency:lobby\x00alice\x00c1"
			return k, client.Set(ctx, k, "pending", 0).Err()
		}},
	} {
		t.Run("old "+old.name, func(t *testing.T) {
			prefix := storeNewPrefix() + "*[x]" // glob characters are no pattern
			key, err := old.write(prefix)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckLayout(ctx, client, prefix)
			var oldErr *OldLayoutError
			if !errors.As(err, &oldErr) || oldErr.Key != key || oldErr.Prefix != prefix {
				t.Fatalf("CheckLayout with %q stored = %v, want an OldLayoutError naming it", key, err)
			}
			for _, want := range []string{"chatd migrate-keys", "redis.prefix", "Upgrading to the room-tagged key layout"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error %q does not say %q", err, want)
				}
			}
			if n, _ := client.Exists(ctx, layoutKey(prefix)).Result(); n != 0 {
				t.Fatalf("a refused layout wrote %s", layoutKey(prefix))
			}
			// Another prefix that merely starts the same is not refused.
			if err := CheckLayout(ctx, client, prefix+"2"); err != nil {
				t.Fatalf("CheckLayout of a longer prefix: %v", err)
			}
			if err := client.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
			if err := CheckLayout(ctx, client, prefix); err != nil {
				t.Fatalf("CheckLayout once the old key is gone: %v", err)
			}
		})
	}

	t.Run("newer version", func(t *testing.T) {
		prefix := storeNewPrefix()
		if err := client.Set(ctx, layoutKey(prefix), "3", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := CheckLayout(ctx, client, prefix); err == nil || !strings.Contains(err.Error(), "a newer chatd") {
			t.Fatalf("CheckLayout of layout 3 = %v, want an error about a newer chatd", err)
		}
	})
}
