package wstransport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/testkit"
)

// clientFrame is a frame as a client sends it: masked, with the given
// first byte (FIN, reserved bits and opcode).
func clientFrame(b0 byte, payload []byte) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

func closeBody(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// dialWS and readText drive a bare gorilla connection rather than a
// testkit.Client: the tests here read close codes, stop reading to make a
// slow consumer, and count goroutines, which a client's reader goroutine
// and frame queue would change.
func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawSession opens a WebSocket session on a polled transport and returns
// the connection's socket, for writing frames byte by byte, and the
// messages the engine receives.
func rawSession(t *testing.T, b *Builder, configure func(config.ServerOptionsInterface)) (*websocket.Conn, net.Conn, engine.Socket, <-chan string) {
	t.Helper()
	url, conns, made := startEngineWith(t, b, configure)
	c := dialWS(t, url+"&transport=websocket")
	readText(t, c) // the open packet
	conn := <-conns
	if polled := (<-made).raw != nil; polled == b.blockingReads {
		t.Fatalf("the transport is polled: %v, want %v", polled, !b.blockingReads)
	}
	got := make(chan string, 64)
	_ = conn.On("message", func(args ...any) {
		if buf, ok := args[0].(types.BufferInterface); ok {
			got <- buf.String()
		}
	})
	return c, c.NetConn(), conn, got
}

func expectMessages(t *testing.T, got <-chan string, want ...string) {
	t.Helper()
	for i, w := range want {
		select {
		case m := <-got:
			if m != w {
				t.Fatalf("message %d: %d bytes %.30q, want %d bytes %.30q", i, len(m), m, len(w), w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d (%.30q) never reached the engine", i, w)
		}
	}
}

func TestFramesSplitAcrossReadsArriveWhole(t *testing.T) {
	_, raw, _, got := rawSession(t, &Builder{}, nil)
	big := strings.Repeat("y", 70000) // a 64-bit length
	stream := append(clientFrame(0x81, []byte("4hello")), clientFrame(0x82, []byte{0, 1, 2})...)
	stream = append(stream, clientFrame(0x81, []byte("4"+big))...)
	// Byte by byte across the first frames, then in odd-sized pieces.
	for i := 0; i < 20; i++ {
		if _, err := raw.Write(stream[i : i+1]); err != nil {
			t.Fatal(err)
		}
		// The pause is the test: it lets each byte arrive as a read of its
		// own rather than coalesce with the next.
		time.Sleep(time.Millisecond)
	}
	for rest := stream[20:]; len(rest) > 0; {
		n := min(len(rest), 777)
		if _, err := raw.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	expectMessages(t, got, "hello", "\x00\x01\x02", big)
}

func TestManyFramesInOneWriteArriveInOrder(t *testing.T) {
	_, raw, _, got := rawSession(t, &Builder{}, nil)
	var stream, want []string
	for i := range 200 {
		m := strings.Repeat(string(rune('a'+i%26)), i)
		stream = append(stream, string(clientFrame(0x81, []byte("4"+m))))
		want = append(want, m)
	}
	if _, err := raw.Write([]byte(strings.Join(stream, ""))); err != nil {
		t.Fatal(err)
	}
	expectMessages(t, got, want...)
}

func TestAFragmentedMessageAndAPingWithinIt(t *testing.T) {
	c, raw, _, got := rawSession(t, &Builder{}, nil)
	pongs := make(chan string, 1)
	c.SetPongHandler(func(data string) error {
		pongs <- data
		return nil
	})
	go func() {
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	}()
	var stream []byte
	stream = append(stream, clientFrame(0x01, []byte("4hel"))...) // text, not final
	stream = append(stream, clientFrame(0x89, []byte("p1"))...)   // ping
	stream = append(stream, clientFrame(0x00, []byte("lo "))...)  // continuation
	stream = append(stream, clientFrame(0x80, []byte("world"))...)
	if _, err := raw.Write(stream); err != nil {
		t.Fatal(err)
	}
	expectMessages(t, got, "hello world")
	select {
	case p := <-pongs:
		if p != "p1" {
			t.Fatalf("pong %q, want p1", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ping was not answered")
	}
}

// closeReasons reports the reason the engine gives when it closes conn.
func closeReasons(conn engine.Socket) <-chan string {
	reasons := make(chan string, 1)
	_ = conn.On("close", func(args ...any) { reasons <- args[0].(string) })
	return reasons
}

func expectCloseReason(t *testing.T, reasons <-chan string, want string) {
	t.Helper()
	select {
	case reason := <-reasons:
		if reason != want {
			t.Fatalf("the engine closed the socket for %q, want %s", reason, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the engine never closed the socket")
	}
}

// closeAfter reads from c until the server closes it and returns the close
// status it sent.
func closeAfter(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	// Do not answer the close: the server may have closed the socket, and
	// the answer would reset the connection before its EOF is read.
	c.SetCloseHandler(func(int, string) error { return nil })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.NextReader()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			// The server closes the connection after its close frame and
			// sends nothing more.
			if n, err := c.NetConn().Read(make([]byte, 64)); err != io.EOF {
				t.Errorf("after the close frame: %d bytes, %v; want EOF", n, err)
			}
			return ce.Code
		}
		t.Fatalf("no close frame from the server: %v", err)
	}
}

func TestBadFramesCloseTheConnectionWithAStatus(t *testing.T) {
	unmasked := []byte{0x81, 0x02, '4', 'x'}
	cases := []struct {
		name  string
		bytes []byte
		code  int
	}{
		{"unmasked", unmasked, websocket.CloseProtocolError},
		{"reserved bit", clientFrame(0xC1, []byte("4x")), websocket.CloseProtocolError},
		{"unknown opcode", clientFrame(0x83, []byte("4x")), websocket.CloseProtocolError},
		{"continuation first", clientFrame(0x80, []byte("4x")), websocket.CloseProtocolError},
		{"text within a fragmented message", append(clientFrame(0x01, []byte("4x")), clientFrame(0x81, []byte("4y"))...), websocket.CloseProtocolError},
		{"fragmented ping", clientFrame(0x09, []byte("p")), websocket.CloseProtocolError},
		{"long ping", clientFrame(0x89, bytes.Repeat([]byte("p"), 126)), websocket.CloseProtocolError},
		{"close of one byte", clientFrame(0x88, []byte{3}), websocket.CloseProtocolError},
		{"close code 1005", clientFrame(0x88, closeBody(1005, "")), websocket.CloseProtocolError},
		{"close reason not UTF-8", clientFrame(0x88, closeBody(1000, "\xff")), websocket.CloseInvalidFramePayloadData},
		{"length with the top bit set", []byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, websocket.CloseProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, raw, conn, got := rawSession(t, &Builder{}, nil)
			closed := closeReasons(conn)
			// A message before the bad frame still arrives.
			if _, err := raw.Write(append(clientFrame(0x81, []byte("4before")), tc.bytes...)); err != nil {
				t.Fatal(err)
			}
			expectMessages(t, got, "before")
			if code := closeAfter(t, c); code != tc.code {
				t.Fatalf("close status %d, want %d", code, tc.code)
			}
			expectCloseReason(t, closed, "transport error")
		})
	}
}

func TestAMessageOverTheLimitClosesWith1009(t *testing.T) {
	t.Run("one frame, before its payload arrives", func(t *testing.T) {
		c, raw, _, _ := rawSession(t, &Builder{ReadLimit: 1000}, nil)
		frame := clientFrame(0x81, bytes.Repeat([]byte("x"), 1001))
		if _, err := raw.Write(frame[:8]); err != nil { // header and mask only
			t.Fatal(err)
		}
		if code := closeAfter(t, c); code != websocket.CloseMessageTooBig {
			t.Fatalf("close status %d, want 1009", code)
		}
	})
	t.Run("fragments", func(t *testing.T) {
		c, raw, _, got := rawSession(t, &Builder{ReadLimit: 1000}, nil)
		at := clientFrame(0x81, []byte("4"+strings.Repeat("x", 999))) // exactly the limit
		over := append(clientFrame(0x01, []byte("4"+strings.Repeat("x", 599))), clientFrame(0x80, bytes.Repeat([]byte("x"), 401))...)
		if _, err := raw.Write(append(at, over...)); err != nil {
			t.Fatal(err)
		}
		expectMessages(t, got, strings.Repeat("x", 999))
		if code := closeAfter(t, c); code != websocket.CloseMessageTooBig {
			t.Fatalf("close status %d, want 1009", code)
		}
	})
}

func TestAClientCloseIsEchoed(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"with a status", closeBody(4001, "bye"), 4001},
		{"without one", nil, websocket.CloseNormalClosure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, raw, conn, _ := rawSession(t, &Builder{}, nil)
			closed := closeReasons(conn)
			if _, err := raw.Write(clientFrame(0x88, tc.body)); err != nil {
				t.Fatal(err)
			}
			if code := closeAfter(t, c); code != tc.want {
				t.Fatalf("close status %d, want %d", code, tc.want)
			}
			expectCloseReason(t, closed, "transport close")
		})
	}
}

// A client that drops the connection, between frames or within one, is a
// plain close (gorilla's abnormal closure, 1006) on both read paths, and a
// message cut short is not delivered.
func TestAConnectionCutIsAPlainClose(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		for _, within := range []bool{false, true} {
			t.Run(fmt.Sprintf("gorilla=%v/within a frame=%v", blocking, within), func(t *testing.T) {
				_, raw, conn, got := rawSession(t, &Builder{blockingReads: blocking}, nil)
				closed := closeReasons(conn)
				stream := clientFrame(0x81, []byte("4whole"))
				if within {
					cut := clientFrame(0x81, []byte("4never whole"))
					stream = append(stream, cut[:len(cut)-3]...)
				}
				if _, err := raw.Write(stream); err != nil {
					t.Fatal(err)
				}
				expectMessages(t, got, "whole")
				// Give the reader time to take in the cut frame's first
				// bytes, so the cut lands within a frame; the transport
				// reports nothing when it has read them.
				time.Sleep(20 * time.Millisecond)
				raw.Close()
				expectCloseReason(t, closed, "transport close")
				select {
				case m := <-got:
					t.Fatalf("a message cut short reached the engine: %q", m)
				default:
				}
			})
		}
	}
}

// A connection the server closes because its client does not read is a
// transport error on both read paths, as it was where gorilla read.
func TestASlowConsumerIsATransportError(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run(fmt.Sprintf("gorilla=%v", blocking), func(t *testing.T) {
			stats := new(Stats)
			url, conns, made := startEngineWith(t, &Builder{SendBufferBytes: 64 << 10, Stats: stats, blockingReads: blocking}, nil)
			c := dialWS(t, url+"&transport=websocket")
			readText(t, c) // the open packet; then the client stops reading
			conn := <-conns
			tr := <-made
			closed := closeReasons(conn)
			frame := MessageFrame(bytes.Repeat([]byte("x"), 4000))
			for i := 0; i < 100000 && tr.WriteFrame(frame, false); i++ {
			}
			if stats.SlowConsumers.Load() != 1 {
				t.Fatalf("slow consumers %d, want 1", stats.SlowConsumers.Load())
			}
			expectCloseReason(t, closed, "transport error")
		})
	}
}

// fakeClock is an idleClock that moves only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex // guards the following fields
	now    time.Duration
	timers []*fakeTimer
}

// fakeTimer is a timer of a fakeClock.
type fakeTimer struct {
	c      *fakeClock
	due    time.Duration
	active bool
	f      func()
}

func (c *fakeClock) since() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) idleTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, due: c.now + d, active: true, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.due, t.active = t.c.now+d, true
	return was
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

// advance moves the clock on by d and runs the timers that came due, each
// once, outside the lock (a timer's function may Reset it).
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []func()
	for _, t := range c.timers {
		if t.active && t.due <= c.now {
			t.active = false
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func TestAClientThatSendsNothingForTheIdleTimeoutIsClosed(t *testing.T) {
	clock := new(fakeClock)
	idle := func(o config.ServerOptionsInterface) { o.SetIdleTimeout(300 * time.Millisecond) }
	_, _, quietConn, _ := rawSession(t, &Builder{clock: clock}, idle)
	talking, _, talkingConn, got := rawSession(t, &Builder{clock: clock}, idle)
	closed := make(chan string, 2)
	_ = quietConn.On("close", func(args ...any) { closed <- "quiet: " + args[0].(string) })
	_ = talkingConn.On("close", func(args ...any) { closed <- "talking: " + args[0].(string) })

	// Both transports start their idle timers as their reading starts.
	testkit.Eventually(t, 5*time.Second, func() bool {
		clock.mu.Lock()
		defer clock.mu.Unlock()
		return len(clock.timers) == 2
	}, "both transports to start reading")
	// The talking client sends every 100 ms of the clock for a second.
	for range 10 {
		if err := talking.WriteMessage(websocket.TextMessage, []byte("4hi")); err != nil {
			t.Fatal(err)
		}
		expectMessages(t, got, "hi") // read, so its time is recorded
		clock.advance(100 * time.Millisecond)
	}
	select {
	case c := <-closed:
		if c != "quiet: transport error" {
			t.Fatalf("closed %q, want the quiet client's transport error", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a client that sent nothing for over three idle timeouts is still open")
	}
	select {
	case c := <-closed:
		t.Fatalf("the talking client was closed too: %s", c)
	default:
	}
}

// An idle connection costs no goroutine of its own for reading: what
// remains per connection is the engine's ping timer.
func TestIdleConnectionsHoldNoReadingGoroutine(t *testing.T) {
	for _, tc := range []struct {
		blocking bool
		max      float64
	}{{false, 1.2}, {true, 2.5}} {
		url, conns, _ := startEngineWith(t, &Builder{blockingReads: tc.blocking}, nil)
		before := settledGoroutines()
		const n = 40
		for range n {
			c := dialWS(t, url+"&transport=websocket")
			readText(t, c)
			<-conns
		}
		per := float64(settledGoroutines()-before) / n
		t.Logf("blocking reads %v: %.2f goroutines per idle connection", tc.blocking, per)
		if per > tc.max {
			t.Errorf("blocking reads %v: %.2f goroutines per idle connection, want at most %.1f", tc.blocking, per, tc.max)
		}
	}
}

// settledGoroutines counts goroutines once their number stops changing.
func settledGoroutines() int {
	last := runtime.NumGoroutine()
	for range 50 {
		// A count that holds still is all there is to wait for: no event
		// says the goroutines of the last connection have parked.
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			return n
		}
		last = n
	}
	return last
}

func TestUnmaskMatchesTheByteWiseDefinition(t *testing.T) {
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	for n := range 40 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		got := unmask(p, key)
		for i := range p {
			if got[i] != p[i]^key[i%4] {
				t.Fatalf("length %d, byte %d: %02x, want %02x", n, i, got[i], p[i]^key[i%4])
			}
		}
	}
}

// Feeding a stream in two pieces, split anywhere, gives the same messages.
func TestFeedAtEverySplit(t *testing.T) {
	stream := append(clientFrame(0x01, []byte("4ab")), clientFrame(0x89, []byte("ping"))...)
	stream = append(stream, clientFrame(0x80, []byte("cd"))...)
	stream = append(stream, clientFrame(0x82, bytes.Repeat([]byte{9}, 300))...)
	want := []string{"9:ping", "1:4abcd", "2:" + strings.Repeat("\x09", 300)}
	for split := 0; split <= len(stream); split++ {
		var r frameReader
		var got []string
		on := func(op byte, p []byte) error {
			got = append(got, string(rune('0'+op))+":"+string(p))
			return nil
		}
		rest, err := r.feed(append([]byte(nil), stream[:split]...), on)
		if err != nil {
			t.Fatal(err)
		}
		rest, err = r.feed(append(rest, stream[split:]...), on)
		if err != nil || len(rest) != 0 {
			t.Fatalf("split at %d: %d bytes left, %v", split, len(rest), err)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("split at %d: got %.60q, want %.60q", split, got, want)
		}
	}
}
