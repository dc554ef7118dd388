// Package wstransport is chatd's Engine.IO WebSocket transport. It replaces
// the socket.io library's own (engine v3.0.6, transports/websocket.go)
// through the engine's documented extension point, the server option
// Transports, and speaks the same protocol to the same clients.
//
// Why: the library's transport hands every write to a per-socket queue that
// starts a goroutine for each write to an idle socket, turns a shared
// broadcast frame into a new gorilla PreparedMessage for every recipient, and
// bounds nothing, so a client that stops reading grows the server's memory
// until its ping times out. This transport writes a frame directly with a
// non-blocking write(2) when nothing is queued before it, queues the rest
// behind a bounded send buffer drained by one short-lived goroutine, drops
// volatile frames while a client is behind, and closes a connection whose
// buffer would overflow. MessageFrame and WriteFrame let chatd's fan-out
// build one frame per broadcast and share it among all recipients.
//
// Reading needs no goroutine while a connection is idle: on Linux one
// epoll(7) instance for the process (see poller) reports connections that
// have something to read, and a goroutine started for that reads the socket
// without blocking, hands every complete message to the engine and re-arms
// the registration. An idle WebSocket connection would otherwise hold a
// goroutine parked in read(2), whose stack (8 kB after a message has been
// handled) was the largest single part of its memory. The frames are parsed
// here (see frameReader), as gorilla/websocket would parse them; answers to
// pings and closes go through the same send buffer as everything else, so
// that frames never interleave. Where polling is not possible (another
// operating system, a connection without a file descriptor), gorilla reads
// the connection in a goroutine of its own, as the library's transport does.
package wstransport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// DefaultSendBufferBytes is the send buffer limit of a Builder that sets none:
// 1 MiB per connection.
const DefaultSendBufferBytes = 1 << 20

// Stats counts what the transports of one Builder did. Its fields are safe
// for concurrent use; chatd exports them as metrics.
type Stats struct {
	// VolatileDropped counts volatile frames (typing notices) dropped
	// because their client had frames queued.
	VolatileDropped atomic.Uint64
	// SlowConsumers counts connections closed because a frame would have
	// taken their send buffer past its limit.
	SlowConsumers atomic.Uint64
	// Queued is the number of bytes queued in all send buffers that the
	// kernel has not taken yet.
	Queued atomic.Int64
}

// Builder makes chatd's WebSocket transports; it is a
// transports.TransportCtor for the engine's Transports option. The polled
// transports parse frames themselves and support no extension, so the
// engine's perMessageDeflate option must stay unset (chatd never sets it):
// a compressed frame would be closed as a protocol error.
type Builder struct {
	// SendBufferBytes bounds the bytes queued for one connection, in bytes;
	// 0 means DefaultSendBufferBytes. A single frame larger than the limit
	// is still sent when nothing is queued before it.
	SendBufferBytes int
	// Stats, if not nil, is updated by every transport of this builder.
	Stats *Stats
	// ReadLimit bounds the payload of a message a client sends, in bytes;
	// a longer one closes the connection with status 1009. 0 means
	// DefaultReadLimit. Set it to the engine's maxHttpBufferSize, which
	// bounds messages read by gorilla (where readiness polling is not
	// possible).
	ReadLimit int64

	// blockingReads makes every transport read in a goroutine of its own
	// (through gorilla), as where polling is not possible; for tests.
	blockingReads bool
	// clock times the idle timeout of polled reads; nil means the real
	// clock. Tests step a fake one instead of waiting.
	clock idleClock
}

// DefaultReadLimit is the read limit of a Builder that sets none: 1e6
// bytes, the engine's default maxHttpBufferSize.
const DefaultReadLimit = 1_000_000

var _ transports.TransportCtor = (*Builder)(nil)

// Name is the Engine.IO transport name, "websocket".
func (*Builder) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades reports true: a polling client may upgrade to this transport.
func (*Builder) HandlesUpgrades() bool { return true }

// UpgradesTo is empty: nothing upgrades from WebSocket.
func (*Builder) UpgradesTo() []string { return nil }

// New returns the transport of the upgraded WebSocket connection in ctx.
func (b *Builder) New(ctx *types.HttpContext) transports.Transport {
	t := &Transport{Transport: transports.MakeTransport(), builder: b}
	t.Prototype(t)
	t.Construct(ctx)
	return t
}

// Transport is the Engine.IO transport of one WebSocket connection.
type Transport struct {
	transports.Transport

	builder     *Builder
	ws          *types.WebSocketConn
	idleTimeout time.Duration
	out         *sender
	// settled is true once the engine writes to this transport alone: from
	// the start for a WebSocket session, and after the upgrade packet for a
	// session that began on long-polling (the engine then flushes what it
	// buffered meanwhile, which a direct write must not overtake).
	settled atomic.Bool
	// failureReported tells the engine why the sender closed the
	// connection, once (see reportFailure).
	failureReported sync.Once

	// Reading driven by the poller; raw is nil when gorilla reads instead.
	raw    syscall.RawConn
	readFn func(fd uintptr) bool // t.readFD, bound once
	readMu sync.Mutex            // held by the goroutine reading the socket; guards the following
	frames frameReader
	// partial holds the bytes of a frame not yet complete, nil between
	// frames; rbuf, rn and rerr are the state of the read(2) in progress.
	partial  []byte
	rbuf     []byte
	rn       int
	rerr     error
	lastRead atomic.Int64 // when the last read with data was, in nanoseconds of the idle clock

	pollMu    sync.Mutex // guards the following
	pollID    uint64
	idle      idleTimer // closes a connection that sends nothing for idleTimeout
	pollEnded bool

	// holding is true from a socket.io CONNECT acknowledgement until
	// ReleaseConnect (see Send); the frames sent meanwhile wait in held.
	holding atomic.Bool
	holdMu  sync.Mutex // guards the following
	held    [][]byte
	holdEnd *time.Timer // releases the frames if ReleaseConnect never comes
}

// connectHoldLimit bounds how long a socket.io CONNECT acknowledgement waits
// for ReleaseConnect, in time.
const connectHoldLimit = time.Second

// Construct takes over the upgraded connection in ctx and starts reading it.
func (t *Transport) Construct(ctx *types.HttpContext) {
	t.Transport.Construct(ctx)
	t.idleTimeout = ctx.IdleTimeout
	t.ws = ctx.Websocket
	t.settled.Store(ctx.Query().Peek("sid") == "")

	limit := t.builder.SendBufferBytes
	if limit <= 0 {
		limit = DefaultSendBufferBytes
	}
	stats := t.builder.Stats
	if stats == nil {
		stats = new(Stats)
	}
	t.out = newSender(t.ws.NetConn(), limit, stats)
	// The engine learns of the close when the connection is really closed
	// (after the queue is written), whether or not the reader is running.
	t.out.onClosed = t.senderClosed

	_ = t.ws.Once("close", func(...any) { t.OnClose() })

	t.SetWritable(true)
	t.SetPerMessageDeflate(nil)
	read := t.read
	if raw := t.pollable(); raw != nil {
		t.raw = raw
		t.readFn = t.readFD
		t.frames.limit = t.builder.ReadLimit
		if t.frames.limit <= 0 {
			t.frames.limit = DefaultReadLimit
		}
		read = t.startPolling
	} else {
		// gorilla reads: it answers pings and closes by writing to the
		// connection itself, which could cut into a frame this transport
		// is writing. (Polled reads answer them in onFrame.)
		t.ws.SetPingHandler(func(data string) error {
			t.out.write(appendFrame(nil, opPong, 0, false, []byte(data)), false)
			return nil
		})
		t.ws.SetCloseHandler(func(code int, _ string) error {
			if code == websocket.CloseNoStatusReceived {
				code = websocket.CloseNormalClosure
			}
			t.out.write(closeFrame(code), false)
			return nil
		})
	}
	transports.StartReader(t, ctx.TransportReadPermission(), read)
}

// pollable returns the connection's file descriptor access when the poller
// can watch it.
func (t *Transport) pollable() syscall.RawConn {
	if t.builder.blockingReads {
		return nil
	}
	sc, ok := t.ws.NetConn().(syscall.Conn)
	if !ok || sharedPoller() == nil {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// Name is "websocket".
func (t *Transport) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades reports true, as for the library's WebSocket transport.
func (t *Transport) HandlesUpgrades() bool { return true }

// read reads frames through gorilla until the connection fails or closes,
// and hands each message to the engine; a transport that cannot be polled
// runs it in a goroutine of its own.
func (t *Transport) read() {
	defer t.OnClose()
	for {
		if t.idleTimeout > 0 {
			_ = t.ws.SetReadDeadline(time.Now().Add(t.idleTimeout))
		}
		mt, r, err := t.ws.NextReader()
		if err != nil {
			t.readFailed(err)
			return
		}
		if mt != websocket.TextMessage && mt != websocket.BinaryMessage {
			continue
		}
		b, err := readMessage(r)
		if err != nil {
			t.readFailed(err)
			return
		}
		t.message(mt, b)
	}
}

// message hands the engine one message the client sent.
func (t *Transport) message(mt int, b []byte) {
	pong := mt == websocket.TextMessage && len(b) == 1 && b[0] == '3'
	upgrade := mt == websocket.TextMessage && len(b) == 1 && b[0] == '5'
	t.receive(mt, b)
	if pong {
		time.AfterFunc(pongRepeat, t.repeatPong)
	}
	if upgrade {
		// The engine switched to this transport and flushed its buffer
		// within receive.
		t.settled.Store(true)
	}
}

// receive hands the engine one message. A WebSocket message is one
// Engine.IO packet; it is decoded here, as the engine's parser (v4) would,
// but without the parser's copies of the payload into growing buffers. What
// the parser would treat specially (protocol 3, base64 packets, an unknown
// type) goes to it unchanged.
func (t *Transport) receive(mt int, b []byte) {
	if t.Protocol() == 4 {
		if mt == websocket.BinaryMessage {
			t.OnPacket(&packet.Packet{Type: packet.MESSAGE, Data: types.NewBytesBuffer(b)})
			return
		}
		if len(b) > 0 && b[0] != 'b' {
			if typ, ok := parser.PACKET_TYPES_REVERSE[b[0]]; ok {
				t.OnPacket(&packet.Packet{Type: typ, Data: types.NewStringBuffer(b[1:])})
				return
			}
		}
	}
	if mt == websocket.BinaryMessage {
		t.OnData(types.NewBytesBuffer(b))
	} else {
		t.OnData(types.NewStringBuffer(b))
	}
}

// readBuffers holds the scratch buffers messages are read into; each
// message is then copied out at its exact size. Reading straight into a
// growing buffer would allocate 512 bytes or more for every packet, most of
// them a few dozen bytes.
var readBuffers = sync.Pool{New: func() any { return new([4096]byte) }}

// readMessage reads the rest of a message from r, up to io.EOF. Any other
// error, including the one gorilla gives for a connection that closed
// within a frame (an abnormal closure, "unexpected EOF"), is returned: a cut
// message is no message.
func readMessage(r io.Reader) ([]byte, error) {
	scratch := readBuffers.Get().(*[4096]byte)
	defer readBuffers.Put(scratch)
	n := 0
	for n < len(scratch) {
		m, err := r.Read(scratch[n:])
		n += m
		if err == io.EOF {
			return append([]byte(nil), scratch[:n]...), nil
		}
		if err != nil {
			return nil, err
		}
	}
	// Larger than the scratch buffer: read the rest as it comes.
	var rest bytes.Buffer
	rest.Grow(2 * len(scratch))
	rest.Write(scratch[:n])
	if _, err := rest.ReadFrom(r); err != nil {
		return nil, err
	}
	return rest.Bytes(), nil
}

// pongRepeat is how long after a client's pong the engine is told of it a
// second time; see repeatPong.
const pongRepeat = time.Second

// repeatPong hands the engine the client's last pong again. The engine
// (v3.0.6, socket.go) sends a ping and only then arms the timer that the
// pong clears. This transport writes the ping at once, so under load the
// pong can be handled before that timer exists; the timer then closes a
// healthy connection 20 s later ("ping timeout"). The repeat clears it. In
// the usual case it only moves the next ping by a second.
func (t *Transport) repeatPong() {
	if t.ReadyState() == "open" {
		t.OnData(types.NewStringBufferString("3"))
	}
}

// readFailed reports why reading stopped, as the library's transport does:
// a close by either side is a plain close, and so is a client that reset
// the connection (it went away: chatd did not close it); anything else is
// a transport error.
func (t *Transport) readFailed(err error) {
	if t.reportFailure() {
		return
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) || errors.Is(err, net.ErrClosed) || peerGone(err) {
		return
	}
	t.OnError("websocket error", err)
}

// Send writes packets, in order. It never blocks on the client: what the
// kernel does not take at once is queued.
func (t *Transport) Send(packets []*packet.Packet) {
	for _, p := range packets {
		var data types.BufferInterface
		if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
			data = p.Options.WsPreEncodedFrame
		} else {
			var err error
			if data, err = t.Parser().EncodePacket(p, t.SupportsBinary()); err != nil {
				t.OnError("websocket error", err)
				return
			}
		}
		op := byte(opBinary)
		if _, ok := data.(*types.StringBuffer); ok {
			op = opText
		}
		b := data.Bytes()
		frame := appendFrame(make([]byte, 0, frameSize(len(b))), op, 0, false, b)
		if op == opText && p.Type == packet.MESSAGE && len(b) > 1 && b[0] == '4' && b[1] == '0' && t.settled.Load() {
			t.hold()
		}
		t.write(frame, false)
	}
	// The engine pairs each Send with one "drain" to run its send callbacks.
	t.Emit("drain")
}

// hold starts holding back what is sent, from the socket.io CONNECT
// acknowledgement on, until ReleaseConnect. The socket.io library (v3.0.6,
// namespace.go _doConnect) writes the acknowledgement before it records the
// namespace as connected (Client.nsps); a client that answers at once (as
// socket.io-client does with the requests it buffered) could be read before
// that, and the library then closes the connection as being in an invalid
// state (client.go ondecoded). chatd's connection handler, which the library
// calls after recording the namespace, calls ReleaseConnect. Without it the
// frames go after connectHoldLimit.
func (t *Transport) hold() {
	t.holdMu.Lock()
	defer t.holdMu.Unlock()
	if t.holding.Load() {
		return
	}
	t.holding.Store(true)
	t.holdEnd = time.AfterFunc(connectHoldLimit, t.ReleaseConnect)
}

// ReleaseConnect sends what was held back since the socket.io CONNECT
// acknowledgement (see hold), in order; the server calls it once the socket
// is connected in the library's records. It does nothing when nothing is
// held.
func (t *Transport) ReleaseConnect() {
	t.holdMu.Lock()
	defer t.holdMu.Unlock()
	if !t.holding.Load() {
		return
	}
	for _, f := range t.held {
		t.out.write(f, false)
	}
	t.held = nil
	t.holding.Store(false)
	t.holdEnd.Stop()
	t.holdEnd = nil // a stopped timer is still 200 bytes of an idle connection
}

// write sends frame, or holds it while a CONNECT acknowledgement is held
// (a volatile frame is then dropped).
func (t *Transport) write(frame []byte, volatile bool) bool {
	if t.holding.Load() {
		t.holdMu.Lock()
		if t.holding.Load() {
			defer t.holdMu.Unlock()
			if volatile {
				return false
			}
			t.held = append(t.held, frame)
			return true
		}
		t.holdMu.Unlock()
	}
	return t.out.write(frame, volatile)
}

// Settled reports whether WriteFrame may be used: the engine writes to this
// transport alone. Until a session that began on long-polling has
// upgraded, frames must go through the engine so that they stay in order
// behind what it has buffered.
func (t *Transport) Settled() bool { return t.settled.Load() }

// WriteFrame sends a frame made by MessageFrame, bypassing the engine's
// per-socket write path; it is safe to share one frame among many
// transports. A volatile frame is dropped when the client has frames
// queued. It reports whether the frame was sent or queued.
func (t *Transport) WriteFrame(frame []byte, volatile bool) bool {
	if t.ReadyState() != "open" {
		return false
	}
	return t.write(frame, volatile)
}

// DoClose sends a close frame and closes the connection once what is queued
// before it is written (within two seconds); then the transport emits
// "close".
func (t *Transport) DoClose(fn types.Callable) {
	t.out.write(closeFrame(websocket.CloseNormalClosure), false)
	t.out.close()
	if fn != nil {
		fn()
	}
}

// senderClosed runs when the sender has closed the connection. When it did
// so because of a failure (a slow consumer, a failed write), the engine
// hears of the failure before the close, as a transport error, whichever
// way the connection is read.
func (t *Transport) senderClosed() {
	t.endPolling()
	t.reportFailure()
	t.OnClose()
}

// reportFailure tells the engine, once, why the sender closed the
// connection, if it did so because of a failure; it reports whether it did.
func (t *Transport) reportFailure() bool {
	err := t.out.failure()
	if err == nil {
		return false
	}
	// A sync.Once, not a flag: a second caller must wait until the engine
	// has heard, or its close would arrive first.
	t.failureReported.Do(func() { t.OnError("websocket error", err) })
	return true
}

// OnClose closes the connection (after flushing, see DoClose) and tells the
// engine, once.
func (t *Transport) OnClose() {
	t.endPolling()
	t.out.close()
	t.Transport.OnClose()
}
