package redis

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultStorePrefix starts every key of the Redis stores when no prefix is
// configured; it is the default of the `redis.prefix` setting.
const DefaultStorePrefix = "chatd"

// storeSetup checks the arguments every Redis store constructor shares and
// fills their defaults: the key prefix and the logger.
func storeSetup(client goredis.UniversalClient, prefix string, logger *slog.Logger) (string, *slog.Logger, error) {
	if client == nil {
		return "", nil, errors.New("redis: a Redis client is required")
	}
	if prefix == "" {
		prefix = DefaultStorePrefix
	}
	// The stores put a hash tag right after the prefix ("<prefix>:{presence}:...")
	// so that the keys one script touches share a Redis Cluster slot. A brace
	// in the prefix could become the hash tag instead and split them.
	if strings.ContainsAny(prefix, "{}") {
		return "", nil, fmt.Errorf("redis: key prefix %q must not contain '{' or '}': the stores add their own Redis Cluster hash tags", prefix)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return prefix, logger, nil
}
