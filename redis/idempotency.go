package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chatd/chatd/rooms"
	goredis "github.com/redis/go-redis/v9"
)

var _ rooms.Idempotency = (*RedisIdempotency)(nil)

// Defaults of [RedisIdempotencyOptions].
const (
	// DefaultIdempotencyTTL is how long a completed send is remembered.
	DefaultIdempotencyTTL = 24 * time.Hour
	// DefaultIdempotencyClaimTTL is how long a claim whose holder vanished
	// (an instance crashed mid-send) blocks its key.
	DefaultIdempotencyClaimTTL = 30 * time.Second
)

// RedisIdempotencyOptions configures a [RedisIdempotency].
type RedisIdempotencyOptions struct {
	// Prefix starts every key; empty means [DefaultStorePrefix]. It may not
	// contain '{' or '}'.
	Prefix string
	// Logger receives the store's diagnostics; nil discards them.
	Logger *slog.Logger
	// TTL is how long a completed send is remembered (at least 1 ms); 0
	// means [DefaultIdempotencyTTL].
	TTL time.Duration
	// ClaimTTL is how long a claim that is neither completed nor released
	// holds its key (at least 1 ms); 0 means [DefaultIdempotencyClaimTTL].
	ClaimTTL time.Duration
}

// RedisIdempotency is the [rooms.Idempotency] of a cluster: one string key
// per send, "<prefix>:{r:<room>}:idem:<key>", holding "pending" while the
// send is claimed (expiring after ClaimTTL) and then the message's JSON
// (expiring after TTL). The key carries the hash tag of the room the send
// goes to (the part of the idempotency key before its first NUL, see
// rooms.Chat), so that [RedisMemberHistory] reads and writes it in the
// script that appends the message.
type RedisIdempotency struct {
	client   goredis.UniversalClient
	prefix   string
	ttl      time.Duration
	claimTTL time.Duration
	log      *slog.Logger
}

// NewRedisIdempotency returns a [RedisIdempotency] on client.
func NewRedisIdempotency(client goredis.UniversalClient, opts RedisIdempotencyOptions) (*RedisIdempotency, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	ttl, claimTTL := opts.TTL, opts.ClaimTTL
	if ttl == 0 {
		ttl = DefaultIdempotencyTTL
	}
	if claimTTL == 0 {
		claimTTL = DefaultIdempotencyClaimTTL
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("redis: idempotency TTL %v must be at least 1ms", ttl)
	}
	if claimTTL < time.Millisecond {
		return nil, fmt.Errorf("redis: idempotency claim TTL %v must be at least 1ms", claimTTL)
	}
	return &RedisIdempotency{client: client, prefix: prefix, ttl: ttl, claimTTL: claimTTL, log: logger}, nil
}

// key is the Redis key of the idempotency key k, which starts with its
// room and a NUL.
func (s *RedisIdempotency) key(k string) string {
	room, _, _ := strings.Cut(k, "\x00")
	return roomKey(s.prefix, room, "idem:"+k)
}

// idempotencyPending is the value of a claimed key. A stored message is JSON
// and so starts with '{'.
const idempotencyPending = "pending"

// idempotencyClaimScript returns the key's value, or claims the key (ARGV[1]
// for ARGV[2] milliseconds) and returns nil when it has none.
var idempotencyClaimScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// idempotencyCompleteScript stores ARGV[2] for ARGV[3] milliseconds unless
// the key holds a message already (the first completed send wins).
var idempotencyCompleteScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// idempotencyReleaseScript deletes the key when it is still pending.
var idempotencyReleaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Claim implements [rooms.Idempotency].
func (s *RedisIdempotency) Claim(ctx context.Context, key string) (*rooms.Message, bool, error) {
	v, err := idempotencyClaimScript.Run(ctx, s.client, []string{s.key(key)},
		idempotencyPending, s.claimTTL.Milliseconds()).Text()
	if errors.Is(err, goredis.Nil) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if v == idempotencyPending {
		return nil, false, nil
	}
	var m rooms.Message
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, false, fmt.Errorf("redis: idempotency record %q is not a message: %w", s.key(key), err)
	}
	return &m, false, nil
}

// Complete implements [rooms.Idempotency]. When the key holds a message
// already (the claim had expired and another send completed first), that
// message stays.
func (s *RedisIdempotency) Complete(ctx context.Context, key string, m rooms.Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("redis: encode message: %w", err)
	}
	return idempotencyCompleteScript.Run(ctx, s.client, []string{s.key(key)},
		idempotencyPending, body, s.ttl.Milliseconds()).Err()
}

// Release implements [rooms.Idempotency]. A key that holds a message
// already keeps it.
func (s *RedisIdempotency) Release(ctx context.Context, key string) error {
	return idempotencyReleaseScript.Run(ctx, s.client, []string{s.key(key)}, idempotencyPending).Err()
}
