package redis

import (
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

func TestRedisGrants(t *testing.T) {
	client := storeRedisServer(t)
	roomstest.TestGrants(t, func(t *testing.T) rooms.Grants {
		g, err := NewRedisGrants(client, RedisGrantsOptions{Prefix: storeNewPrefix()})
		if err != nil {
			t.Fatal(err)
		}
		return g
	})
}

func TestRedisCutoffs(t *testing.T) {
	client := storeRedisServer(t)
	roomstest.TestCutoffs(t, func(t *testing.T) rooms.Cutoffs {
		c, err := NewRedisCutoffs(client, RedisGrantsOptions{Prefix: storeNewPrefix(), CutoffTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
