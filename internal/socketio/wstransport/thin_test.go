package wstransport

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestThinConnWritesNoHandshakeAndClosesTheConnection checks the stand-in
// that replaces the engine's gorilla Conn: the client sees none of its
// handshake, a frame written through it (as the engine writes a close to a
// session it refuses) arrives whole, and closing it closes the connection.
func TestThinConnWritesNoHandshakeAndClosesTheConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := thinConn(server)
	if err != nil {
		t.Fatalf("thinConn: %v", err)
	}
	if got, want := ws.RemoteAddr().String(), server.RemoteAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want %s", got, want)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatalf("WriteMessage: %v", err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("reading the frame: %v", err)
	}
	if want := []byte{0x81, 2, 'h', 'i'}; string(got) != string(want) {
		t.Errorf("client read %q, want the frame %q and no handshake before it", got, want)
	}
	if err := ws.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n, err := client.Read(got); err != io.EOF {
		t.Errorf("after Close the client read %d bytes, err %v; want io.EOF", n, err)
	}
}

// TestPolledSessionDropsTheEnginesGorillaConn checks that a polled session
// keeps the stand-in, not the Conn the engine upgraded with, once it reads,
// and that closing the engine's handle still closes the client's connection.
func TestPolledSessionDropsTheEnginesGorillaConn(t *testing.T) {
	c, raw, conn, got := rawSession(t, &Builder{}, nil)
	_, _ = raw.Write(clientFrame(0x81, []byte("4ping")))
	expectMessages(t, got, "ping") // reading has started
	ws := conn.Request().Websocket
	if _, ok := ws.NetConn().(*handshakeSink); !ok {
		t.Fatalf("the engine's WebSocket handle is over a %T, want the stand-in's *handshakeSink", ws.NetConn())
	}
	_ = ws.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the client's connection stayed open after the engine closed its handle")
			}
			return
		}
	}
}
