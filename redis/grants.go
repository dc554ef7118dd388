package redis

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/rooms"
)

var (
	_ rooms.Grants  = (*RedisGrants)(nil)
	_ rooms.Cutoffs = (*RedisCutoffs)(nil)
)

// RedisGrantsOptions configures a [RedisGrants] and a [RedisCutoffs].
type RedisGrantsOptions struct {
	// Prefix starts every key; empty means [DefaultStorePrefix]. It may not
	// contain '{' or '}'.
	Prefix string
	// Logger receives the store's diagnostics; nil discards them.
	Logger *slog.Logger
	// CutoffTTL is how long a cutoff is kept: the longest a dropped session
	// is kept for recovery. At least a minute.
	CutoffTTL time.Duration
}

// RedisGrants is the [rooms.Grants] of a cluster: one Redis set per user,
// "<prefix>:grants:{<userId>}", of the rooms the server API granted, and a
// hash "<prefix>:grants:{<userId>}:revoked" of room -> Unix milliseconds of
// its last revoke. Both keys share the user's hash tag, so one MULTI
// changes both.
type RedisGrants struct {
	client goredis.UniversalClient
	keys   string // "<prefix>:grants:"
	log    *slog.Logger
}

// NewRedisGrants returns a [RedisGrants] on client.
func NewRedisGrants(client goredis.UniversalClient, opts RedisGrantsOptions) (*RedisGrants, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &RedisGrants{client: client, keys: prefix + ":grants:", log: logger}, nil
}

func (g *RedisGrants) key(userID string) string { return g.keys + "{" + userID + "}" }

func (g *RedisGrants) revokedKey(userID string) string { return g.key(userID) + ":revoked" }

// Grant implements [rooms.Grants].
func (g *RedisGrants) Grant(ctx context.Context, userID, room string) error {
	pipe := g.client.TxPipeline()
	pipe.SAdd(ctx, g.key(userID), room)
	pipe.HDel(ctx, g.revokedKey(userID), room)
	_, err := pipe.Exec(ctx)
	return err
}

// Revoke implements [rooms.Grants].
func (g *RedisGrants) Revoke(ctx context.Context, userID, room string, at time.Time) error {
	pipe := g.client.TxPipeline()
	pipe.SRem(ctx, g.key(userID), room)
	pipe.HSet(ctx, g.revokedKey(userID), room, at.UnixMilli())
	_, err := pipe.Exec(ctx)
	return err
}

// RevokedAt implements [rooms.Grants].
func (g *RedisGrants) RevokedAt(ctx context.Context, userID, room string) (time.Time, error) {
	s, err := g.client.HGet(ctx, g.revokedKey(userID), room).Result()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

// Has implements [rooms.Grants].
func (g *RedisGrants) Has(ctx context.Context, userID, room string) (bool, error) {
	return g.client.SIsMember(ctx, g.key(userID), room).Result()
}

// RedisCutoffs is the [rooms.Cutoffs] of a cluster: one key per user,
// "<prefix>:cutoff:{<userId>}", holding the Unix milliseconds of the last
// API disconnect, expiring after CutoffTTL.
type RedisCutoffs struct {
	client goredis.UniversalClient
	keys   string // "<prefix>:cutoff:"
	ttl    time.Duration
}

// NewRedisCutoffs returns a [RedisCutoffs] on client.
func NewRedisCutoffs(client goredis.UniversalClient, opts RedisGrantsOptions) (*RedisCutoffs, error) {
	prefix, _, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &RedisCutoffs{client: client, keys: prefix + ":cutoff:", ttl: max(opts.CutoffTTL, time.Minute)}, nil
}

func (c *RedisCutoffs) key(userID string) string { return c.keys + "{" + userID + "}" }

// Cut implements [rooms.Cutoffs]. A later cutoff already stored is kept.
func (c *RedisCutoffs) Cut(ctx context.Context, userID string, t time.Time) error {
	return cutoffScript.Run(ctx, c.client, []string{c.key(userID)}, t.UnixMilli(), c.ttl.Milliseconds()).Err()
}

// cutoffScript stores ARGV[1] unless the key holds a later time, and
// renews its expiry (ARGV[2] milliseconds).
var cutoffScript = goredis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

// Since implements [rooms.Cutoffs].
func (c *RedisCutoffs) Since(ctx context.Context, userID string) (time.Time, error) {
	s, err := c.client.Get(ctx, c.key(userID)).Result()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}
