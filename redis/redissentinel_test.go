package redis

import (
	"testing"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

func TestRedisSentinel(t *testing.T) {
	s := testkit.StartSentinel(t)

	t.Run("stores", func(t *testing.T) {
		client := s.Client()
		roomstest.TestStores(t, func(t *testing.T) rooms.Stores {
			return storeNewStores(t, client, storeNewPrefix())
		}, storeSuiteOptions)
	})

	t.Run("presence reap", func(t *testing.T) {
		storePresenceReapScenario(t, s.Client())
	})
}
