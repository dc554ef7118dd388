package wstransport

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestFramesReadByGorilla checks the frames this package writes with an
// independent WebSocket implementation: gorilla's client.
func TestFramesReadByGorilla(t *testing.T) {
	sizes := []int{0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 200000}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s := newSender(c.NetConn(), 1<<30, new(Stats))
		for _, n := range sizes {
			s.write(MessageFrame(bytes.Repeat([]byte("x"), n)), false)
		}
		s.write(closeFrame(websocket.CloseNormalClosure), false)
		s.close()
	}))
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range sizes {
		mt, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("frame of %d bytes: %v", n, err)
		}
		if mt != websocket.TextMessage {
			t.Fatalf("frame of %d bytes: type %d, want text", n, mt)
		}
		want := "4" + strings.Repeat("x", n)
		if string(data) != want {
			t.Fatalf("frame of %d bytes: got %d bytes, want %d", n, len(data), len(want))
		}
	}
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the frames: %v, want a normal close", err)
	}
}
