package wstransport

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/testkit"
)

// recordingBuilder is a Builder that hands over every transport it makes.
type recordingBuilder struct {
	*Builder
	made chan *Transport
}

func (b recordingBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := b.Builder.New(ctx)
	b.made <- t.(*Transport)
	return t
}

// startEngine serves a bare Engine.IO server with long-polling and this
// package's WebSocket transport, and returns its URL, its connections and
// the WebSocket transports it makes.
func startEngine(t *testing.T) (string, <-chan engine.Socket, <-chan *Transport) {
	return startEngineWith(t, &Builder{}, nil)
}

// startEngineWith is startEngine with a Builder of the test's and, if set,
// a change to the engine's options.
func startEngineWith(t *testing.T, builder *Builder, configure func(config.ServerOptionsInterface)) (string, <-chan engine.Socket, <-chan *Transport) {
	t.Helper()
	b := recordingBuilder{Builder: builder, made: make(chan *Transport, 64)}
	opts := config.DefaultServerOptions()
	opts.SetTransports(types.NewSet[transports.TransportCtor](engine.Polling, b))
	opts.SetPingInterval(time.Hour)
	if configure != nil {
		configure(opts)
	}
	srv := engine.NewServer(opts)
	conns := make(chan engine.Socket, 64)
	_ = srv.On("connection", func(args ...any) { conns <- args[0].(engine.Socket) })
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return hs.URL + "/engine.io/?EIO=4", conns, b.made
}

// dial opens an Engine.IO WebSocket to url without reading a frame.
func dial(t *testing.T, url string) *testkit.Client {
	t.Helper()
	return testkit.MustDial(t, url, testkit.Options{})
}

func transportOf(t *testing.T, conn engine.Socket) *Transport {
	t.Helper()
	tr, ok := conn.Transport().(*Transport)
	if !ok {
		t.Fatalf("the engine's transport is a %T, want *wstransport.Transport", conn.Transport())
	}
	return tr
}

func TestAWebSocketSessionIsSettledFromTheStart(t *testing.T) {
	url, conns, _ := startEngine(t)
	c := dial(t, url+"&transport=websocket")
	c.Open()
	conn := <-conns
	tr := transportOf(t, conn)
	if !tr.Settled() {
		t.Fatal("a session that began on WebSocket is not settled")
	}
	// A frame written directly arrives as an Engine.IO message.
	if !tr.WriteFrame(MessageFrame([]byte(`2["hello"]`)), false) {
		t.Fatal("WriteFrame refused a frame on an open transport")
	}
	if got := c.ReadText(); got != `42["hello"]` {
		t.Fatalf("got %q, want 42[\"hello\"]", got)
	}
}

func TestAnUpgradedSessionSettlesOnlyAfterTheUpgradePacket(t *testing.T) {
	url, conns, made := startEngine(t)
	open := testkit.PollHandshake(t, url+"&transport=polling")
	conn := <-conns

	c := dial(t, url+"&transport=websocket&sid="+open.SID)
	c.WriteText("2probe")
	if got := c.ReadText(); got != "3probe" {
		t.Fatalf("probe answered %q, want 3probe", got)
	}
	// Still on polling: the engine has not switched, and the new transport
	// must not take direct writes yet.
	if _, ok := conn.Transport().(*Transport); ok {
		t.Fatal("the engine switched transports before the upgrade packet")
	}
	if candidate := <-made; candidate.Settled() {
		t.Fatal("the upgrade candidate is settled before the upgrade packet: a direct write could overtake what the engine buffered")
	}

	// Something the engine buffers for the client while it switches.
	conn.Send(strings.NewReader("before"), nil, nil)
	c.WriteText("5")
	testkit.Eventually(t, 5*time.Second, func() bool {
		tr, ok := conn.Transport().(*Transport)
		return ok && tr.Settled()
	}, "the upgraded transport to settle")
	tr := transportOf(t, conn)
	tr.WriteFrame(MessageFrame([]byte("after")), false)
	// What the engine buffered while the client switched comes first.
	if got := c.ReadText(); got != "4before" {
		t.Fatalf("first frame after the upgrade %q, want 4before", got)
	}
	if got := c.ReadText(); got != "4after" {
		t.Fatalf("second frame %q, want 4after", got)
	}
}

// Messages reach the engine whole and in order, text and binary, small and
// larger than the read scratch buffer.
func TestMessagesReachTheEngineWhole(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		name := "polled"
		if blocking {
			name = "gorilla"
		}
		t.Run(name, func(t *testing.T) { testMessagesReachTheEngineWhole(t, blocking) })
	}
}

func testMessagesReachTheEngineWhole(t *testing.T, blocking bool) {
	url, conns, made := startEngineWith(t, &Builder{blockingReads: blocking}, nil)
	c := dial(t, url+"&transport=websocket")
	c.Open()
	conn := <-conns
	if polled := (<-made).raw != nil; polled == blocking {
		t.Fatalf("the transport is polled: %v, want %v", polled, !blocking)
	}
	got := make(chan any, 8)
	_ = conn.On("message", func(args ...any) { got <- args[0] })

	big := strings.Repeat("x", 3*4096+17)
	sends := []struct {
		binary bool
		frame  string
		want   string
	}{
		{false, "4hello", "hello"},
		{true, "\x00\x01\x02", "\x00\x01\x02"},
		{false, "4" + big, big},
		{false, "4", ""},
		{true, big, big},
	}
	for _, s := range sends {
		if s.binary {
			c.WriteBinary([]byte(s.frame))
		} else {
			c.WriteText(s.frame)
		}
	}
	for i, s := range sends {
		var m any
		select {
		case m = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never reached the engine", i)
		}
		buf, ok := m.(types.BufferInterface)
		if !ok {
			t.Fatalf("message %d is a %T, want a buffer", i, m)
		}
		_, isText := buf.(*types.StringBuffer)
		if isText == s.binary {
			t.Errorf("message %d: text = %v, want %v", i, isText, !s.binary)
		}
		if buf.String() != s.want {
			t.Errorf("message %d: %d bytes %.20q, want %d bytes %.20q", i, buf.Len(), buf.String(), len(s.want), s.want)
		}
	}
}

// cutReader returns data and then fails as gorilla does for a connection
// that closed within a frame.
type cutReader struct{ data []byte }

func (c *cutReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestACutMessageIsAnError(t *testing.T) {
	for _, size := range []int{0, 10, 4096, 5000} {
		if b, err := readMessage(&cutReader{data: make([]byte, size)}); err != io.ErrUnexpectedEOF {
			t.Errorf("%d bytes then a cut: got %d bytes and %v, want io.ErrUnexpectedEOF", size, len(b), err)
		}
	}
	if b, err := readMessage(strings.NewReader("whole")); err != nil || string(b) != "whole" {
		t.Errorf("a whole message: %q, %v", b, err)
	}
}

// TestAConnectAcknowledgementWaitsForReleaseConnect: a socket.io CONNECT
// acknowledgement, and everything after it, reaches the client only once
// the server says the socket is recorded as connected.
func TestAConnectAcknowledgementWaitsForReleaseConnect(t *testing.T) {
	url, conns, _ := startEngine(t)
	c := dial(t, url+"&transport=websocket")
	c.Open()
	conn := <-conns
	tr := transportOf(t, conn)
	conn.Write(types.NewStringBufferString(`0{"sid":"x"}`), nil, nil)
	if !tr.WriteFrame(MessageFrame([]byte(`2["session"]`)), false) {
		t.Fatal("WriteFrame refused a frame while the acknowledgement is held")
	}
	if tr.WriteFrame(MessageFrame([]byte(`2["typing"]`)), true) {
		t.Fatal("a volatile frame was taken while the acknowledgement is held")
	}
	// That nothing arrives is the test: wait a while, then look.
	c.NoFrameWithin(100 * time.Millisecond)
	// Another Engine.IO session, to release.
	c = dial(t, url+"&transport=websocket")
	c.Open()
	conn = <-conns
	tr = transportOf(t, conn)
	conn.Write(types.NewStringBufferString(`0{"sid":"y"}`), nil, nil)
	tr.WriteFrame(MessageFrame([]byte(`2["session"]`)), false)
	tr.ReleaseConnect()
	for _, want := range []string{`40{"sid":"y"}`, `42["session"]`} {
		if got := c.ReadText(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// Later frames go at once.
	tr.WriteFrame(MessageFrame([]byte(`2["later"]`)), false)
	if got := c.ReadText(); got != `42["later"]` {
		t.Fatalf("got %q", got)
	}
}

// TestAHeldAcknowledgementGoesWithoutReleaseConnectAfterALimit: an embedder
// that never calls ReleaseConnect still connects its clients.
func TestAHeldAcknowledgementGoesWithoutReleaseConnectAfterALimit(t *testing.T) {
	url, conns, _ := startEngine(t)
	c := dial(t, url+"&transport=websocket")
	c.Open()
	conn := <-conns
	conn.Write(types.NewStringBufferString(`0{"sid":"z"}`), nil, nil)
	start := time.Now()
	if got := c.ReadText(); got != `40{"sid":"z"}` {
		t.Fatalf("got %q", got)
	}
	if d := time.Since(start); d < connectHoldLimit/2 {
		t.Fatalf("the acknowledgement went after %v, before the hold limit %v", d, connectHoldLimit)
	}
}
