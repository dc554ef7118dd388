package testkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// DefaultTimeout is how long a Client waits for a frame, a packet or an
// acknowledgement before it fails the test, unless Options.Timeout says
// otherwise.
const DefaultTimeout = 5 * time.Second

// Options configures Dial and Connect. The zero value dials the default
// namespace at /socket.io/ with no auth and no extra headers.
type Options struct {
	// Auth is the CONNECT packet's payload, marshalled to JSON (chatd's
	// dev mode reads {"userId": ...}); nil sends a CONNECT without one.
	Auth any
	// Header is sent with the WebSocket handshake (Origin, Cookie, ...).
	Header http.Header
	// Path is the Engine.IO path; empty means "/socket.io/".
	Path string
	// Timeout bounds every wait of the client; zero means DefaultTimeout.
	Timeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// WebSocketURL is the Engine.IO v4 WebSocket URL of the server at base
// (http://host:port): ws://host:port/socket.io/?EIO=4&transport=websocket.
// path is the Engine.IO path; empty means "/socket.io/".
func WebSocketURL(base, path string) string {
	if path == "" {
		path = "/socket.io/"
	}
	return "ws" + strings.TrimPrefix(base, "http") + path + "?EIO=4&transport=websocket"
}

// Frame is one WebSocket message: an Engine.IO packet ("0{...}" open,
// "3" pong, "4..." message) when Binary is false, raw bytes when true.
type Frame struct {
	Binary bool
	Data   []byte
}

// String is the frame's text, for failure messages.
func (f Frame) String() string { return string(f.Data) }

// Packet is one socket.io packet of the default namespace, carried in an
// Engine.IO message frame.
type Packet struct {
	// Type is the socket.io packet type: '0' CONNECT, '1' DISCONNECT,
	// '2' EVENT, '3' ACK, '4' CONNECT_ERROR.
	Type byte
	// ID is the acknowledgement id, or -1 when the packet has none.
	ID int
	// Data is the JSON after the id: the event's [name, args...], the
	// acknowledgement's [args...], or the CONNECT(_ERROR) object.
	Data json.RawMessage
}

// ParsePacket parses s, the socket.io part of an Engine.IO message (the
// frame without its leading '4'), of the default namespace.
func ParsePacket(s string) (Packet, error) {
	if s == "" {
		return Packet{}, errors.New("empty socket.io packet")
	}
	p := Packet{Type: s[0], ID: -1}
	s = s[1:]
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 {
		p.ID, _ = strconv.Atoi(s[:i])
	}
	p.Data = json.RawMessage(s[i:])
	return p, nil
}

// Event returns the event's name and arguments, or ok false when p is not
// an EVENT.
func (p Packet) Event() (name string, args []json.RawMessage, ok bool) {
	if p.Type != '2' {
		return "", nil, false
	}
	var all []json.RawMessage
	if json.Unmarshal(p.Data, &all) != nil || len(all) == 0 || json.Unmarshal(all[0], &name) != nil {
		return "", nil, false
	}
	return name, all[1:], true
}

// Open is the Engine.IO open packet.
type Open struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"` // milliseconds
	PingTimeout  int      `json:"pingTimeout"`  // milliseconds
	MaxPayload   int      `json:"maxPayload"`   // bytes
}

// Ack is chatd's acknowledgement of a request: {"ok": true, ...} or
// {"ok": false, "error": {"code": ..., "message": ...}}.
type Ack struct {
	OK    bool `json:"ok"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	// Raw is the whole acknowledgement object, for fields beyond these.
	Raw json.RawMessage `json:"-"`
}

// Client is a test's socket.io client on one WebSocket. A goroutine reads
// every frame and answers Engine.IO pings, so a test that only writes does
// not lose its session; the other frames queue until the test reads them
// with ReadFrame, Next, Event or Ack. A Client belongs to one test
// goroutine: its reads are not safe for concurrent use, its writes are.
type Client struct {
	t       testing.TB
	conn    *websocket.Conn
	timeout time.Duration

	wmu    sync.Mutex // guards writes to conn and nextID
	nextID int

	frames   chan Frame    // frames read, in order
	done     chan struct{} // closed when the transport is gone
	closedAt time.Time     // when the transport closed; read after done
	pending  []Frame       // taken from frames, not yet consumed

	connected json.RawMessage // the CONNECT answer's data, set by TryConnect
}

// Dial opens a WebSocket to url (ws://, or http:// which it turns into
// ws://) and returns before any frame is read, so a test of the transport
// sees the open packet itself. Only opts.Header and opts.Timeout apply.
// The connection closes when the test ends.
func Dial(t testing.TB, url string, opts Options) (*Client, error) {
	if strings.HasPrefix(url, "http") {
		url = "ws" + strings.TrimPrefix(url, "http")
	}
	d := websocket.Dialer{HandshakeTimeout: opts.timeout()}
	conn, res, err := d.Dial(url, opts.Header)
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("websocket handshake: %w (HTTP %d)", err, res.StatusCode)
		}
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	c := &Client{t: t, conn: conn, timeout: opts.timeout(), frames: make(chan Frame, 1024), done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.Close)
	return c, nil
}

// MustDial is Dial failing the test on an error.
func MustDial(t testing.TB, url string, opts Options) *Client {
	t.Helper()
	c, err := Dial(t, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TryConnect dials the socket.io server at base (http://host:port), reads
// the open packet, sends CONNECT with opts.Auth and waits for the answer:
// it returns an error for a failed handshake or a CONNECT_ERROR.
func TryConnect(t testing.TB, base string, opts Options) (*Client, error) {
	c, err := Dial(t, WebSocketURL(base, opts.Path), opts)
	if err != nil {
		return nil, err
	}
	f, err := c.nextFrame()
	if err != nil || f.Binary || len(f.Data) == 0 || f.Data[0] != '0' {
		c.Close()
		return nil, fmt.Errorf("engine.io open packet: %q, %v", f.Data, err)
	}
	connect := "40"
	if opts.Auth != nil {
		b, err := json.Marshal(opts.Auth)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
		connect += string(b)
	}
	c.WriteText(connect)
	p, err := c.nextPacket(func(p Packet) bool { return p.Type == '0' || p.Type == '4' })
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("waiting for the CONNECT answer: %w", err)
	}
	if p.Type == '4' {
		c.Close()
		return nil, fmt.Errorf("connect_error %s", p.Data)
	}
	c.connected = p.Data
	return c, nil
}

// Connect is TryConnect failing the test on an error.
func Connect(t testing.TB, base string, opts Options) *Client {
	t.Helper()
	c, err := TryConnect(t, base, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Connected is the data of the server's CONNECT answer, such as
// {"sid":"...","pid":"..."} where connection state recovery is on (a
// reconnect sends the pid, and the offset of the last event, in
// Options.Auth); it is empty for a Client from Dial.
func (c *Client) Connected() json.RawMessage { return c.connected }

// read queues every frame but pings, which it answers, until the
// transport closes.
func (c *Client) read() {
	defer func() {
		c.closedAt = time.Now()
		close(c.done)
	}()
	for {
		typ, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.TextMessage && string(msg) == "2" {
			c.WriteText("3")
			continue
		}
		c.frames <- Frame{Binary: typ == websocket.BinaryMessage, Data: msg}
	}
}

// WriteText sends one text frame as it is, e.g. "40{...}" or "2probe".
// An error writing is ignored: the test sees the transport close instead.
func (c *Client) WriteText(frame string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(frame))
}

// WriteBinary sends one binary frame.
func (c *Client) WriteBinary(frame []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.BinaryMessage, frame)
}

// Close closes the WebSocket without a socket.io DISCONNECT, as a dropped
// network does. It is idempotent.
func (c *Client) Close() { _ = c.conn.Close() }

// Done is closed once the transport is gone, closed by either side.
func (c *Client) Done() <-chan struct{} { return c.done }

// ClosedAt is when the transport closed; it is valid once Done is closed.
func (c *Client) ClosedAt() time.Time {
	<-c.done
	return c.closedAt
}

// Unread returns the socket.io packets received and not yet consumed, in
// order, without waiting.
func (c *Client) Unread() []Packet {
	for drained := false; !drained; {
		select {
		case f := <-c.frames:
			c.pending = append(c.pending, f)
		default:
			drained = true
		}
	}
	var ps []Packet
	for _, f := range c.pending {
		if p, ok := packetOf(f); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// nextFrame returns the first frame not yet consumed, waiting up to the
// client's timeout.
func (c *Client) nextFrame() (Frame, error) {
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f, nil
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case f := <-c.frames:
		return f, nil
	case <-c.done:
		select {
		case f := <-c.frames:
			return f, nil
		default:
		}
		return Frame{}, io.EOF
	case <-timer.C:
		return Frame{}, fmt.Errorf("no frame within %v", c.timeout)
	}
}

// ReadFrame returns the next frame not yet consumed, failing the test when
// none comes within the client's timeout.
func (c *Client) ReadFrame() Frame {
	c.t.Helper()
	f, err := c.nextFrame()
	if err != nil {
		c.t.Fatalf("waiting for a frame: %v", err)
	}
	return f
}

// ReadText is ReadFrame's text.
func (c *Client) ReadText() string {
	c.t.Helper()
	return string(c.ReadFrame().Data)
}

// NoFrameWithin fails the test when a frame arrives within d. It waits the
// whole of d: that nothing comes is what it checks.
func (c *Client) NoFrameWithin(d time.Duration) {
	c.t.Helper()
	if len(c.pending) > 0 {
		c.t.Fatalf("got %q, want no frame", c.pending[0].Data)
	}
	select {
	case f := <-c.frames:
		c.t.Fatalf("got %q within %v, want no frame", f.Data, d)
	case <-time.After(d):
	}
}

// Open reads the Engine.IO open packet, which must be the next frame.
func (c *Client) Open() Open {
	c.t.Helper()
	f := c.ReadFrame()
	var o Open
	if f.Binary || len(f.Data) == 0 || f.Data[0] != '0' || json.Unmarshal(f.Data[1:], &o) != nil {
		c.t.Fatalf("first frame %q, want the Engine.IO open packet", f.Data)
	}
	return o
}

func packetOf(f Frame) (Packet, bool) {
	if f.Binary || len(f.Data) < 2 || f.Data[0] != '4' {
		return Packet{}, false
	}
	p, err := ParsePacket(string(f.Data[1:]))
	return p, err == nil
}

// nextPacket returns the first socket.io packet, pending or still to come,
// that matches; other frames stay queued.
func (c *Client) nextPacket(match func(Packet) bool) (Packet, error) {
	for i, f := range c.pending {
		if p, ok := packetOf(f); ok && match(p) {
			c.pending = slices.Delete(c.pending, i, i+1)
			return p, nil
		}
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if p, ok := packetOf(f); ok && match(p) {
				return p, nil
			}
			c.pending = append(c.pending, f)
		case <-c.done:
			// Frames read before the close are still queued.
			select {
			case f := <-c.frames:
				if p, ok := packetOf(f); ok && match(p) {
					return p, nil
				}
				c.pending = append(c.pending, f)
				continue
			default:
			}
			return Packet{}, fmt.Errorf("the transport closed; unread: %q", c.pendingText())
		case <-timer.C:
			return Packet{}, fmt.Errorf("none within %v; unread: %q", c.timeout, c.pendingText())
		}
	}
}

func (c *Client) pendingText() []string {
	s := make([]string, len(c.pending))
	for i, f := range c.pending {
		s[i] = string(f.Data)
	}
	return s
}

// Next returns the first socket.io packet, received or still to come, that
// matches, leaving the others for later reads; it fails the test when none
// comes within the client's timeout or the transport closes first.
func (c *Client) Next(match func(Packet) bool) Packet {
	c.t.Helper()
	p, err := c.nextPacket(match)
	if err != nil {
		c.t.Fatalf("waiting for a socket.io packet: %v", err)
	}
	return p
}

// Event waits for the server event called name and returns its arguments.
func (c *Client) Event(name string) []json.RawMessage {
	c.t.Helper()
	var args []json.RawMessage
	_, err := c.nextPacket(func(p Packet) bool {
		n, a, ok := p.Event()
		args = a
		return ok && n == name
	})
	if err != nil {
		c.t.Fatalf("waiting for the %q event: %v", name, err)
	}
	return args
}

// EventInto waits for the server event called name and unmarshals its
// first argument into v.
func (c *Client) EventInto(name string, v any) {
	c.t.Helper()
	args := c.Event(name)
	if len(args) == 0 {
		c.t.Fatalf("the %q event has no argument", name)
	}
	if err := json.Unmarshal(args[0], v); err != nil {
		c.t.Fatalf("the %q event's argument %s: %v", name, args[0], err)
	}
}

// Emit sends an event with an acknowledgement id, as socket.io-client's
// emit with a callback does, and returns the id without waiting.
func (c *Client) Emit(event string, args ...any) int {
	c.t.Helper()
	b, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	id := c.nextID
	c.nextID++
	c.wmu.Unlock()
	c.WriteText("42" + strconv.Itoa(id) + string(b))
	return id
}

// EmitNoAck sends an event without an acknowledgement id.
func (c *Client) EmitNoAck(event string, args ...any) {
	c.t.Helper()
	b, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		c.t.Fatal(err)
	}
	c.WriteText("42" + string(b))
}

// AckArgs waits for the acknowledgement of request id and returns its
// arguments.
func (c *Client) AckArgs(id int) []json.RawMessage {
	c.t.Helper()
	p, err := c.nextPacket(func(p Packet) bool { return p.Type == '3' && p.ID == id })
	if err != nil {
		c.t.Fatalf("waiting for the acknowledgement of request %d: %v", id, err)
	}
	var args []json.RawMessage
	if err := json.Unmarshal(p.Data, &args); err != nil {
		c.t.Fatalf("malformed acknowledgement %s", p.Data)
	}
	return args
}

// Ack waits for chatd's acknowledgement of request id: one object.
func (c *Client) Ack(id int) Ack {
	c.t.Helper()
	args := c.AckArgs(id)
	var a Ack
	if len(args) != 1 || json.Unmarshal(args[0], &a) != nil {
		c.t.Fatalf("malformed acknowledgement of request %d: %s", id, args)
	}
	a.Raw = args[0]
	return a
}

// Request emits event with payload and waits for its acknowledgement.
func (c *Client) Request(event string, payload any) Ack {
	c.t.Helper()
	return c.Ack(c.Emit(event, payload))
}

// MustOK sends a request that must succeed and returns its acknowledgement.
func (c *Client) MustOK(event string, payload any) Ack {
	c.t.Helper()
	a := c.Request(event, payload)
	if !a.OK {
		c.t.Fatalf("%s %v: %s", event, payload, a.Raw)
	}
	return a
}

// MustFail sends a request that must fail with the error code.
func (c *Client) MustFail(event string, payload any, code string) Ack {
	c.t.Helper()
	a := c.Request(event, payload)
	if a.OK || a.Error.Code != code {
		c.t.Fatalf("%s %v = %s, want error code %s", event, payload, a.Raw, code)
	}
	return a
}

// PollHandshake opens a long-polling session with a GET of url (an
// Engine.IO URL such as http://host:port/socket.io/?EIO=4&transport=polling)
// and returns the open packet; it fails the test unless the answer is 200
// with one.
func PollHandshake(t testing.TB, url string) Open {
	t.Helper()
	c := &http.Client{Timeout: DefaultTimeout}
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("polling handshake: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatalf("polling handshake: %v", err)
	}
	var o Open
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "0") || json.Unmarshal(body[1:], &o) != nil || o.SID == "" {
		t.Fatalf("polling handshake answered %d %q", res.StatusCode, body)
	}
	return o
}
