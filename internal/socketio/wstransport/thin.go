package wstransport

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// A polled transport reads and writes its connection itself, so the gorilla
// Conn the engine made at the upgrade (engine v3.0.6, server.go: an
// Upgrader with 1 kB read and 1 kB write buffers) is never read from or
// written to again. The engine and the transport still call a few of its
// methods (Close, RemoteAddr, NetConn), so it cannot simply go; thinConn
// makes a stand-in that has those methods and almost no buffers: about
// 0.7 kB instead of 2.9 kB of every idle connection (bench/RESULTS.md).

// thinKey is a valid Sec-WebSocket-Key (16 bytes, base64) for the stand-in's
// handshake, which no client sees.
const thinKey = "Y2hhdGQgdGhpbiBjb25uIQ=="

// thinUpgrader makes stand-ins: the smallest read buffer gorilla allows
// (125 bytes, a control frame's payload) and write buffers only from a pool
// when something is written through gorilla, which a polled transport never
// does.
var thinUpgrader = websocket.Upgrader{
	ReadBufferSize:  1,
	WriteBufferPool: new(thinPool),
	CheckOrigin:     func(*http.Request) bool { return true },
}

// thinPool hands gorilla a fresh buffer for the rare write through it (the
// engine's close message to a session it refuses) and keeps none: a
// sync.Pool would keep 1 kB per P for something that almost never happens.
type thinPool struct{}

func (thinPool) Get() any { return nil }
func (thinPool) Put(any)  {}

// thinRequest is the upgrade request of every stand-in's handshake, which
// gorilla only reads.
var thinRequest = &http.Request{
	Method: http.MethodGet,
	Header: http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {thinKey},
	},
}

// thinConn returns a gorilla Conn over c that holds no 1 kB buffers, for a
// connection that is already a WebSocket: gorilla's handshake answer is
// swallowed, everything after it goes to c.
func thinConn(c net.Conn) (*websocket.Conn, error) {
	w := &thinHijacker{conn: &handshakeSink{Conn: c}}
	ws, err := thinUpgrader.Upgrade(w, thinRequest, nil)
	if err != nil {
		return nil, err
	}
	if !w.conn.done.Load() {
		return nil, errors.New("wstransport: the stand-in connection wrote no handshake")
	}
	return ws, nil
}

// handshakeSink passes everything to the connection but the first write,
// gorilla's 101 answer, which the client had from the real upgrade.
type handshakeSink struct {
	net.Conn
	done atomic.Bool
}

func (h *handshakeSink) Write(b []byte) (int, error) {
	if h.done.CompareAndSwap(false, true) {
		return len(b), nil
	}
	return h.Conn.Write(b)
}

// thinHijacker is the ResponseWriter of a stand-in's handshake.
type thinHijacker struct {
	conn *handshakeSink
}

func (*thinHijacker) Header() http.Header         { return http.Header{} }
func (*thinHijacker) Write(b []byte) (int, error) { return 0, http.ErrHijacked }
func (*thinHijacker) WriteHeader(int)             {}

// thinReader is the empty reader of every stand-in's hijack: with
// ReadBufferSize set, gorilla only asks it how much it has buffered.
var thinReader = bufio.NewReaderSize(nil, 16)

// Hijack returns the sink and small, empty buffers: gorilla makes its own
// reader, uses the writer for the handshake answer only, and takes write
// buffers from its pool.
func (t *thinHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return t.conn, bufio.NewReadWriter(thinReader, bufio.NewWriterSize(nil, 16)), nil
}
