package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// LayoutVersion is the version of the key layout the stores of this
// package read and write, kept in "<prefix>:layout". Version 2 puts a
// room's keys under the room's hash tag (see the package documentation);
// version 1, never written down, had all membership under "{membership}"
// and "<prefix>:history:<room>" and "<prefix>:idempotency:<key>".
const LayoutVersion = 2

// layoutKey holds the layout version of the keys under prefix.
func layoutKey(prefix string) string { return prefix + ":layout" }

// oldLayoutPrefixes are the starts of the keys of layout 1 that layout 2
// names otherwise, after "<prefix>:".
var oldLayoutPrefixes = []string{"{membership}:", "history:", "idempotency:"}

// OldLayoutError is [CheckLayout]'s answer when Redis holds keys of the
// layout before [LayoutVersion] under the prefix: the stores would not
// see them, and every membership and history would seem gone.
type OldLayoutError struct {
	// Prefix is the key prefix (redis.prefix).
	Prefix string
	// Key is one key of the old layout that was found.
	Key string
}

func (e *OldLayoutError) Error() string {
	return fmt.Sprintf("Redis holds keys of the key layout before version %d under prefix %q (such as %q), which this chatd does not read; "+
		"stop every chatd instance, then run `chatd migrate-keys` once with the same redis.* settings, or start with a new redis.prefix, "+
		"or delete the old keys (see \"Upgrading to the room-tagged key layout\" in the README)", LayoutVersion, e.Prefix, e.Key)
}

// CheckLayout makes sure that the keys under prefix are of [LayoutVersion]
// before any store uses them. "<prefix>:layout" holding the version is
// enough; without it, Redis is searched for keys of the older layout
// (a SCAN of every master, once: the first start writes the version) and
// an [*OldLayoutError] names one when there are any. Otherwise the version
// is written and the stores may start. A version it does not know (a newer
// chatd wrote it) is an error wrapping [ErrUnknownLayout]. Any other error
// is Redis's: the check could not be made.
func CheckLayout(ctx context.Context, client goredis.UniversalClient, prefix string) error {
	prefix, _, err := storeSetup(client, prefix, nil)
	if err != nil {
		return err
	}
	key := layoutKey(prefix)
	v, err := client.Get(ctx, key).Result()
	switch {
	case err == nil:
		return checkLayoutVersion(key, v)
	case !errors.Is(err, goredis.Nil):
		return fmt.Errorf("redis: read the key layout version %s: %w", key, err)
	}
	old, err := findOldLayoutKey(ctx, client, prefix)
	if err != nil {
		return fmt.Errorf("redis: search for keys of the old layout under prefix %q: %w", prefix, err)
	}
	if old != "" {
		return &OldLayoutError{Prefix: prefix, Key: old}
	}
	return writeLayoutVersion(ctx, client, prefix)
}

// ErrUnknownLayout is [CheckLayout]'s error for a layout version other
// than [LayoutVersion].
var ErrUnknownLayout = errors.New("unknown key layout")

// checkLayoutVersion checks the value v of the layout key.
func checkLayoutVersion(key, v string) error {
	if v == strconv.Itoa(LayoutVersion) {
		return nil
	}
	return fmt.Errorf("redis: %w: %s says the keys are of layout %q, but this chatd reads layout %d only: a newer chatd wrote them", ErrUnknownLayout, key, v, LayoutVersion)
}

// writeLayoutVersion records that the keys under prefix are of
// [LayoutVersion], unless another instance recorded a version first.
func writeLayoutVersion(ctx context.Context, client goredis.UniversalClient, prefix string) error {
	key := layoutKey(prefix)
	ok, err := client.SetNX(ctx, key, LayoutVersion, 0).Result()
	if err != nil {
		return fmt.Errorf("redis: write the key layout version %s: %w", key, err)
	}
	if ok {
		return nil
	}
	v, err := client.Get(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("redis: read the key layout version %s: %w", key, err)
	}
	return checkLayoutVersion(key, v)
}

// findOldLayoutKey returns a key of the old layout under prefix, or "" when
// there is none; it scans every master of a Redis Cluster.
func findOldLayoutKey(ctx context.Context, client goredis.UniversalClient, prefix string) (string, error) {
	if cc, ok := client.(*goredis.ClusterClient); ok {
		var found atomicString
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
			k, err := scanOldLayout(ctx, node, prefix, found.get)
			if k != "" {
				found.set(k)
			}
			return err
		})
		return found.get(), err
	}
	return scanOldLayout(ctx, client, prefix, func() string { return "" })
}

// oldLayoutPattern matches, among others, every key of the old layout
// under prefix: "<prefix>:" followed by '{', 'h' or 'i'.
func oldLayoutPattern(prefix string) string {
	return globEscape(prefix) + ":[{hi]*"
}

// scanOldLayout scans one server for a key of the old layout; it stops
// early when stop returns a key (another master found one).
func scanOldLayout(ctx context.Context, c goredis.Cmdable, prefix string, stop func() string) (string, error) {
	pattern := oldLayoutPattern(prefix)
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return "", err
		}
		for _, k := range keys {
			if isOldLayoutKey(prefix, k) {
				return k, nil
			}
		}
		if next == 0 || stop() != "" {
			return "", nil
		}
		cursor = next
	}
}

// isOldLayoutKey reports whether key is one of the old layout under prefix.
func isOldLayoutKey(prefix, key string) bool {
	rest, ok := strings.CutPrefix(key, prefix+":")
	if !ok {
		return false
	}
	for _, p := range oldLayoutPrefixes {
		if strings.HasPrefix(rest, p) {
			return true
		}
	}
	return false
}

// globEscape escapes the characters of s that SCAN MATCH reads as a
// pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// atomicString is a string that goroutines set and read.
type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) get() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.s
}

func (a *atomicString) set(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.s = s
}
