package rooms_test

import (
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

// TestMemoryStores runs the store conformance tests on the in-memory stores.
func TestMemoryStores(t *testing.T) {
	const historySize = 7
	roomstest.TestStores(t, func(*testing.T) rooms.Stores {
		return rooms.Stores{
			Membership:  rooms.NewMemoryMembership(),
			Presence:    rooms.NewMemoryPresence(),
			History:     rooms.NewMemoryHistory(historySize),
			Idempotency: rooms.NewMemoryIdempotency(time.Hour),
		}
	}, roomstest.Options{HistorySize: historySize})
}
