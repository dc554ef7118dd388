package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

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

	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, _, err := conn.ReadMessage(); err != nil { // the Engine.IO open packet
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`40{"userId":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-presence.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never recorded the socket's presence")
	}
	_ = conn.Close()
	// Let the server see the close before setup goes on.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(s.metrics.sockets) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(presence.release)
	<-presence.recorded
	for time.Now().Before(deadline) {
		users, _ := chat.Presence(context.Background(), "r")
		if len(users) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	users, _ := chat.Presence(context.Background(), "r")
	t.Fatalf("alice is still online after her only socket dropped during setup: %v", users)
}
