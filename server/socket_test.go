package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatd/chatd/internal/testkit"
	"github.com/chatd/chatd/rooms"
)

// slowPresence holds Connect until release is closed, as a slow Redis would.
type slowPresence struct {
	*rooms.MemoryPresence
	entered  chan struct{}
	release  chan struct{}
	recorded chan struct{}
}

func (p *slowPresence) Connect(ctx context.Context, u rooms.User, socketID string) (bool, error) {
	close(p.entered)
	<-p.release
	defer close(p.recorded)
	return p.MemoryPresence.Connect(ctx, u, socketID)
}

// A socket that drops while its presence is being recorded must not leave
// its user online for good.
func TestDisconnectDuringSetupLeavesNoPresence(t *testing.T) {
	presence := &slowPresence{MemoryPresence: rooms.NewMemoryPresence(), entered: make(chan struct{}), release: make(chan struct{}), recorded: make(chan struct{})}
	membership := rooms.NewMemoryMembership()
	if _, err := membership.Join(context.Background(), "alice", "r", 10); err != nil {
		t.Fatal(err)
	}
	s, chat, base := serveStores(t, membership, presence)

	c := testkit.MustDial(t, testkit.WebSocketURL(base, ""), testkit.Options{})
	c.Open()
	c.WriteText(`40{"userId":"alice"}`)
	select {
	case <-presence.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never recorded the socket's presence")
	}
	c.Close()
	// Let the server see the close before setup goes on.
	testkit.Eventually(t, 5*time.Second, func() bool { return testutil.ToFloat64(s.metrics.sockets) == 0 }, "the server to count the dropped socket gone")
	close(presence.release)
	<-presence.recorded
	testkit.Eventually(t, 5*time.Second, func() error {
		if users, _ := chat.Presence(context.Background(), "r"); len(users) != 0 {
			return fmt.Errorf("still online: %v", users)
		}
		return nil
	}, "alice to be offline after her only socket dropped during setup")
}
