package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The Engine.IO v4 / socket.io v5 frames chatbench speaks, one packet per
// WebSocket text frame, as socket.io-client sends them with
// transports: ["websocket"]:
//
//	server: 0{"sid":...,"pingInterval":...}      Engine.IO open
//	client: 40{"userId":"u","name":"u"}          socket.io CONNECT to "/" with auth
//	server: 40{"sid":"...","pid":"..."}          CONNECT accepted (44{...} refused)
//	server: 42["session",{...},"<offset>"]       chatd's first event
//	client: 42<id>["join",{"room":"r"}]          event with an ack id
//	server: 43<id>[{"ok":true,"room":"r"}]       the ack
//	server: 2, client: 3                         Engine.IO ping and pong
//	client: 41                                   socket.io DISCONNECT on close
//
// With connection state recovery on, the server appends the packet's offset
// as a last argument of every event; chatbench ignores it.
var (
	framePing       = []byte("2")
	framePong       = []byte("3")
	frameDisconnect = []byte("41")
	prefixEvent     = []byte("42[")
	prefixAck       = []byte("43")
	prefixSession   = []byte(`42["session",`)
	prefixMessage   = []byte(`42["message",`)
	keyText         = []byte(`"text":"`)
)

// ctrlAckBase is the first ack id of control requests (joins); message
// sends use their sequence number as ack id, below it.
const ctrlAckBase = 1 << 40

// handshakeTimeout bounds one connection's dial and socket.io handshake.
const handshakeTimeout = 10 * time.Second

// frameHandler receives the frames of a connection that are neither pings
// nor acks of control requests. It runs on the connection's read goroutine;
// b is valid only during the call; at is the receipt time in nanoseconds
// since the run's base time.
type frameHandler func(c *client, b []byte, at int64)

// client is one socket.io connection over a WebSocket.
type client struct {
	idx    int
	userID string
	ws     *websocket.Conn
	base   time.Time // the run's monotonic time origin
	onData frameHandler

	wmu sync.Mutex // serializes writes (gorilla allows one writer at a time)

	mu      sync.Mutex            // guards the following fields
	ctrl    map[int64]chan []byte // pending control acks by ack id
	nextCtl int64                 // next control ack id, from ctrlAckBase
	closed  bool                  // set when the read loop ended
	closing bool                  // close() was called
	readErr error                 // why the read loop ended, when not by close()
	wbuf    bytes.Buffer          // scratch for control frames

	state any           // scenario state, fixed before the read goroutine starts
	done  chan struct{} // closed when the read loop ends
	buf   []byte        // read buffer, used by the read goroutine only
}

// now is the time since the run's base, in nanoseconds (monotonic).
func (c *client) now() int64 { return int64(time.Since(c.base)) }

// dialOptions say how to open a connection.
type dialOptions struct {
	target string // http://host:port
	userID string
	base   time.Time
	dialer *websocket.Dialer
	onData frameHandler
	state  any  // the client's scenario state, read by onData
	noWait bool // the CONNECT answer is enough; do not wait for a session event
}

// newDialer returns the WebSocket dialer shared by a run's connections: small
// buffers (frames are a few hundred bytes), no compression (neither server
// enables it by default), one write buffer pool. With sources above 1 the
// connections take their source address from 127.0.0.1, 127.0.0.2, ... in
// turn, so that more of them than one address has ephemeral ports can reach
// one server port.
func newDialer(sources int) *websocket.Dialer {
	dial := (&net.Dialer{Timeout: handshakeTimeout}).DialContext
	if sources > 1 {
		var next atomic.Uint32
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			src := net.IPv4(127, 0, 0, byte(1+next.Add(1)%uint32(sources))) //nolint:gosec // sources is at most 254
			d := net.Dialer{Timeout: handshakeTimeout, LocalAddr: &net.TCPAddr{IP: src}}
			return d.DialContext(ctx, network, addr)
		}
	}
	return &websocket.Dialer{
		NetDialContext:   dial,
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
	}
}

// wsURL returns the Engine.IO WebSocket URL of an http:// base URL.
func wsURL(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("target %q: scheme must be http or ws", target)
	}
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String(), nil
}

// dial opens a connection, connects to namespace "/" with dev auth
// {userId, name} and waits for chatd's `session` event (or only for the
// CONNECT answer, with noWait). It then serves the
// connection's reads in a goroutine of its own.
func dial(ctx context.Context, o dialOptions) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	u, err := wsURL(o.target)
	if err != nil {
		return nil, err
	}
	ws, res, err := o.dialer.DialContext(ctx, u, nil)
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	c := &client{
		userID:  o.userID,
		ws:      ws,
		base:    o.base,
		onData:  o.onData,
		state:   o.state,
		ctrl:    make(map[int64]chan []byte),
		nextCtl: ctrlAckBase,
		done:    make(chan struct{}),
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = ws.SetReadDeadline(time.Now()) })
	err = c.handshake(o.noWait)
	if !stop() || err != nil {
		_ = ws.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

// handshake reads the open packet, sends CONNECT with auth, reads the
// CONNECT answer and waits for the `session` event (unless noWait).
func (c *client) handshake(noWait bool) error {
	b, err := c.readFrame()
	if err != nil {
		return fmt.Errorf("engine.io open: %w", err)
	}
	if !bytes.HasPrefix(b, []byte("0{")) {
		return fmt.Errorf("engine.io open: want 0{...}, got %q", clip(b))
	}
	auth, _ := json.Marshal(map[string]string{"userId": c.userID, "name": c.userID})
	if err := c.write(append([]byte("40"), auth...)); err != nil {
		return err
	}
	for {
		b, err = c.readFrame()
		if err != nil {
			return fmt.Errorf("socket.io connect: %w", err)
		}
		switch {
		case bytes.Equal(b, framePing):
			if err := c.write(framePong); err != nil {
				return err
			}
		case bytes.HasPrefix(b, []byte("40")):
			// accepted; chatd's session event follows
			if noWait {
				return nil
			}
		case bytes.HasPrefix(b, []byte("44")):
			var e struct {
				Message string `json:"message"`
				Data    any    `json:"data"`
			}
			_ = json.Unmarshal(b[2:], &e)
			return fmt.Errorf("connect_error: %s (%v)", e.Message, e.Data)
		case bytes.HasPrefix(b, prefixSession):
			return nil
		case bytes.HasPrefix(b, prefixEvent):
			// other events before session are ignored
		default:
			return fmt.Errorf("socket.io connect: unexpected frame %q", clip(b))
		}
	}
}

// readFrame reads one WebSocket message into the connection's buffer.
func (c *client) readFrame() ([]byte, error) {
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return nil, err
		}
		b := c.buf[:0]
		for {
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)]
			}
			n, err := r.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		c.buf = b
		if typ == websocket.TextMessage {
			return b, nil
		}
		// binary attachments: chatd sends none
	}
}

// readLoop answers pings, routes control acks and hands everything else to
// onData until the connection ends.
func (c *client) readLoop() {
	defer close(c.done)
	for {
		b, err := c.readFrame()
		at := c.now()
		if err != nil {
			c.mu.Lock()
			c.closed = true
			if !c.closing {
				c.readErr = err
			}
			for id, ch := range c.ctrl {
				close(ch)
				delete(c.ctrl, id)
			}
			c.mu.Unlock()
			return
		}
		switch {
		case bytes.Equal(b, framePing):
			_ = c.write(framePong)
		case bytes.HasPrefix(b, prefixAck) && c.routeCtrl(b):
		case len(b) >= 2 && b[0] == '4' && b[1] == '1', len(b) == 1 && b[0] == '1':
			// server-side disconnect or Engine.IO close: the read fails next
			_ = c.ws.Close()
		default:
			if c.onData != nil {
				c.onData(c, b, at)
			}
		}
	}
}

// routeCtrl delivers the ack of a control request; it reports whether b was
// one.
func (c *client) routeCtrl(b []byte) bool {
	id, rest, ok := parseUint(b[len(prefixAck):])
	if !ok || id < ctrlAckBase {
		return false
	}
	c.mu.Lock()
	key := int64(id) //nolint:gosec // ids are small counters starting at ctrlAckBase
	ch := c.ctrl[key]
	delete(c.ctrl, key)
	c.mu.Unlock()
	if ch != nil {
		ch <- append([]byte(nil), rest...)
	}
	return true
}

// write sends one text frame.
func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// ackResult is the one-object acknowledgement of a chatd request.
type ackResult struct {
	OK    bool `json:"ok"`
	Room  string
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// request emits event with payload and waits for its ack.
func (c *client) request(ctx context.Context, event string, payload any) (ackResult, error) {
	var res ackResult
	p, err := json.Marshal([]any{event, payload})
	if err != nil {
		return res, err
	}
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return res, errors.New("connection closed")
	}
	id := c.nextCtl
	c.nextCtl++
	c.ctrl[id] = ch
	c.wbuf.Reset()
	c.wbuf.WriteString("42")
	c.wbuf.WriteString(strconv.FormatInt(id, 10))
	c.wbuf.Write(p)
	frame := append([]byte(nil), c.wbuf.Bytes()...)
	c.mu.Unlock()
	if err := c.write(frame); err != nil {
		return res, err
	}
	select {
	case b, ok := <-ch:
		if !ok {
			return res, errors.New("connection closed before the ack")
		}
		var arr []ackResult
		if err := json.Unmarshal(b, &arr); err != nil || len(arr) == 0 {
			return res, fmt.Errorf("%s: bad ack %q", event, clip(b))
		}
		res = arr[0]
		if !res.OK {
			if res.Error != nil {
				return res, fmt.Errorf("%s: %s: %s", event, res.Error.Code, res.Error.Message)
			}
			return res, fmt.Errorf("%s: refused: %q", event, clip(b))
		}
		return res, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.ctrl, id)
		c.mu.Unlock()
		return res, fmt.Errorf("%s: no ack: %w", event, ctx.Err())
	}
}

// close sends a socket.io DISCONNECT, as socket.io-client does, and closes
// the connection.
func (c *client) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.ws.WriteMessage(websocket.TextMessage, frameDisconnect)
	c.wmu.Unlock()
	_ = c.ws.Close()
	<-c.done
}

// lost reports why the connection ended when it was not closed by close().
func (c *client) lost() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed && !c.closing {
		if c.readErr == nil {
			return errors.New("closed by the server")
		}
		return c.readErr
	}
	return nil
}

// parseUint parses the leading decimal digits of b and returns the rest.
func parseUint(b []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i >= 19 {
			return 0, b, false
		}
		n = n*10 + uint64(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// clip shortens a frame for an error message.
func clip(b []byte) string {
	const n = 120
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
