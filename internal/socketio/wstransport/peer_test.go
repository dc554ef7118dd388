package wstransport

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

// A client that goes away without a close frame, while the server still
// writes to it, closed the connection itself: the engine's reason is
// "transport close", as for a client's close frame, not "transport error"
// (which chatd counts as a close by the server). Both ways a client can
// vanish: a FIN (its process exited) and a reset (its socket was closed
// with unread data, or SO_LINGER 0).
func TestAClientThatVanishesClosedTheConnection(t *testing.T) {
	for _, reset := range []bool{false, true} {
		for _, blocking := range []bool{false, true} {
			t.Run(fmt.Sprintf("reset=%v/gorilla=%v", reset, blocking), func(t *testing.T) {
				for attempt := range 10 {
					url, conns, made := startEngineWith(t, &Builder{blockingReads: blocking}, nil)
					c := dialWS(t, url+"&transport=websocket")
					readText(t, c) // the open packet
					conn := <-conns
					tr := <-made
					closed := closeReasons(conn)
					tcp := c.UnderlyingConn().(*net.TCPConn)
					if reset {
						_ = tcp.SetLinger(0)
					}
					_ = tcp.Close()
					frame := MessageFrame(bytes.Repeat([]byte("x"), 1000))
					deadline := time.Now().Add(5 * time.Second)
					for tr.WriteFrame(frame, false) && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					select {
					case reason := <-closed:
						if reason != "transport close" {
							t.Fatalf("attempt %d: the engine closed the socket for %q, want transport close", attempt, reason)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("the engine never closed the socket")
					}
				}
			})
		}
	}
}
