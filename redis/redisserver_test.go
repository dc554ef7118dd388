package redis

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/internal/testkit"
)

// storeRedisServer starts a private redis-server on a free loopback port for
// a store test and returns a client of it; both stop when the test ends.
func storeRedisServer(t *testing.T) *goredis.Client {
	t.Helper()
	return testkit.StartRedisServer(t).Client()
}
