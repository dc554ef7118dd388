package rooms_test

import (
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/rooms/roomstest"
)

func TestMemoryGrants(t *testing.T) {
	roomstest.TestGrants(t, func(*testing.T) rooms.Grants { return rooms.NewMemoryGrants() })
}

func TestMemoryCutoffs(t *testing.T) {
	roomstest.TestCutoffs(t, func(*testing.T) rooms.Cutoffs { return rooms.NewMemoryCutoffs(time.Minute) })
}
