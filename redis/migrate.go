package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// MigrateStats counts what [MigrateLayout] moved.
type MigrateStats struct {
	// Memberships is the number of (user, room) memberships written in the
	// new layout.
	Memberships int
	// Histories and Records are the rooms' streams and the clientMsgId
	// records copied to their new names.
	Histories, Records int
	// Dropped is the number of old keys deleted without a copy: the room
	// sets of the old membership, which the users' sets repeat.
	Dropped int
}

// migratedVersion is the version of the memberships [MigrateLayout]
// writes on the room side: older than any a join or leave takes from a
// user's clock, so that every later one applies.
const migratedVersion = "1"

// MigrateLayout moves the keys of the old layout under prefix to the names
// of [LayoutVersion] and then records that version: each user's rooms
// become the user's set and an entry in each room's members, history
// streams and clientMsgId records are copied (DUMP and RESTORE, so with
// their ids and expiry) to their room-tagged names, and each old key is
// deleted once its data is in place. The old room sets are deleted: the
// old layout wrote them with the users' sets, which the message path
// checked. It refuses to run while a chatd instance is alive under prefix
// (its presence entry has not expired): instances must be stopped, or they
// would write old keys during the move. A migration that stopped half-way
// can be run again.
func MigrateLayout(ctx context.Context, client goredis.UniversalClient, prefix string) (MigrateStats, error) {
	prefix, _, err := storeSetup(client, prefix, nil)
	if err != nil {
		return MigrateStats{}, err
	}
	live, err := client.ZCount(ctx, prefix+":{presence}:instances", strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return MigrateStats{}, fmt.Errorf("redis: look for running instances: %w", err)
	}
	if live > 0 {
		return MigrateStats{}, fmt.Errorf("redis: %d chatd instances are running under prefix %q; stop them all before moving the keys", live, prefix)
	}
	m := &migration{client: client, prefix: prefix}
	scan := func(ctx context.Context, c goredis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, oldLayoutPattern(prefix), 1000).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := m.move(ctx, k); err != nil {
					return fmt.Errorf("redis: move %q: %w", k, err)
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := client.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, client)
	}
	if err != nil {
		return m.stats(), err
	}
	// Keys the scan may have missed (written while it ran) block the
	// version, as they would block a start.
	old, err := findOldLayoutKey(ctx, client, prefix)
	if err != nil {
		return m.stats(), fmt.Errorf("redis: search for keys of the old layout left: %w", err)
	}
	if old != "" {
		return m.stats(), fmt.Errorf("redis: a key of the old layout, %q, appeared during the move (is a chatd instance running?); run it again", old)
	}
	if err := client.Set(ctx, layoutKey(prefix), LayoutVersion, 0).Err(); err != nil {
		return m.stats(), fmt.Errorf("redis: write the key layout version: %w", err)
	}
	return m.stats(), nil
}

// migration is one run of MigrateLayout; the masters of a cluster are
// scanned concurrently.
type migration struct {
	client goredis.UniversalClient
	prefix string
	mu     sync.Mutex // guards st
	st     MigrateStats
}

func (m *migration) stats() MigrateStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

func (m *migration) count(f func(*MigrateStats)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.st)
}

// move moves one key that the scan found, when it is of the old layout.
func (m *migration) move(ctx context.Context, key string) error {
	rest := strings.TrimPrefix(key, m.prefix+":")
	switch {
	case strings.HasPrefix(rest, "{membership}:user:"):
		return m.moveUser(ctx, key, strings.TrimPrefix(rest, "{membership}:user:"))
	case strings.HasPrefix(rest, "{membership}:"):
		if err := m.client.Del(ctx, key).Err(); err != nil {
			return err
		}
		m.count(func(s *MigrateStats) { s.Dropped++ })
	case strings.HasPrefix(rest, "history:"):
		room := strings.TrimPrefix(rest, "history:")
		if err := m.copyKey(ctx, key, roomKey(m.prefix, room, "history")); err != nil {
			return err
		}
		m.count(func(s *MigrateStats) { s.Histories++ })
	case strings.HasPrefix(rest, "idempotency:"):
		k := strings.TrimPrefix(rest, "idempotency:")
		room, _, _ := strings.Cut(k, "\x00")
		if err := m.copyKey(ctx, key, roomKey(m.prefix, room, "idem:"+k)); err != nil {
			return err
		}
		m.count(func(s *MigrateStats) { s.Records++ })
	}
	return nil
}

// moveUser writes the memberships of the old set key of userID in the new
// layout, then deletes it.
func (m *migration) moveUser(ctx context.Context, key, userID string) error {
	rs, err := m.client.SMembers(ctx, key).Result()
	if err != nil {
		return err
	}
	if len(rs) > 0 {
		if err := m.client.SAdd(ctx, userKey(m.prefix, userID, "rooms"), toAny(rs)...).Err(); err != nil {
			return err
		}
	}
	for _, room := range rs {
		// A membership that is already there (a run before this one)
		// keeps its version.
		if err := m.client.HSetNX(ctx, roomKey(m.prefix, room, "members"), userID, migratedVersion).Err(); err != nil {
			return err
		}
	}
	if err := m.client.Del(ctx, key).Err(); err != nil {
		return err
	}
	m.count(func(s *MigrateStats) { s.Memberships += len(rs) })
	return nil
}

// copyKey copies the value and expiry of key to the name to, then deletes
// key. A to that exists already is a copy a stopped run made.
func (m *migration) copyKey(ctx context.Context, key, to string) error {
	dump, err := m.client.Dump(ctx, key).Result()
	if errors.Is(err, goredis.Nil) {
		return nil // gone (expired) since the scan
	}
	if err != nil {
		return err
	}
	ttl, err := m.client.PTTL(ctx, key).Result()
	if err != nil {
		return err
	}
	switch {
	case ttl == -2*time.Nanosecond || ttl == -2*time.Millisecond:
		return nil // expired meanwhile
	case ttl < 0:
		ttl = 0 // no expiry
	}
	err = m.client.Restore(ctx, to, ttl, dump).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYKEY") {
		return err
	}
	return m.client.Del(ctx, key).Err()
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
