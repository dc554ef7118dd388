package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisAdminSessions keeps the Admin UI's logins of a cluster, so that a
// login on one instance holds on every other: one string key per login,
// "<prefix>:admin:session:<key>", expiring with the login. The keys it is
// given are digests (server.AdminSessions), never the session ids the UI
// holds. It implements server.AdminSessions.
type RedisAdminSessions struct {
	client goredis.UniversalClient
	keys   string // "<prefix>:admin:session:"
}

// NewRedisAdminSessions returns a [RedisAdminSessions] on client; prefix
// empty means [DefaultStorePrefix].
func NewRedisAdminSessions(client goredis.UniversalClient, prefix string) (*RedisAdminSessions, error) {
	prefix, _, err := storeSetup(client, prefix, nil)
	if err != nil {
		return nil, err
	}
	return &RedisAdminSessions{client: client, keys: prefix + ":admin:session:"}, nil
}

// Save keeps key for ttl.
func (s *RedisAdminSessions) Save(ctx context.Context, key string, ttl time.Duration) error {
	if key == "" || ttl <= 0 {
		return errors.New("redis: admin session: empty key or no TTL")
	}
	return s.client.Set(ctx, s.keys+key, "1", ttl).Err()
}

// Exists reports whether key is kept.
func (s *RedisAdminSessions) Exists(ctx context.Context, key string) (bool, error) {
	n, err := s.client.Exists(ctx, s.keys+key).Result()
	return n == 1, err
}
