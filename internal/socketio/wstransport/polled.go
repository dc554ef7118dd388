package wstransport

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var thePoller struct {
	once sync.Once
	p    *poller
}

// sharedPoller returns the process's poller, or nil where there is none.
func sharedPoller() *poller {
	thePoller.once.Do(func() {
		if p, err := newPoller(); err == nil {
			thePoller.p = p
		}
	})
	return thePoller.p
}

// errWouldBlock is readOnce's report of a drained socket.
var errWouldBlock = errors.New("nothing to read")

// startPolling registers the connection with the poller; pollRead then
// runs whenever the client has sent something.
func (t *Transport) startPolling() {
	t.pollMu.Lock()
	if t.pollEnded {
		t.pollMu.Unlock()
		return
	}
	id, err := sharedPoller().add(t.raw, t.pollRead)
	if err == nil {
		t.pollID = id
		// Reading and writing are this transport's from here on; the
		// engine's gorilla Conn can go (see thinConn). Initialization is
		// over (the engine granted reading), so its timeout no longer
		// closes the connection through the field being replaced.
		if thin, terr := thinConn(t.ws.NetConn()); terr == nil {
			t.ws.Conn = thin
		}
		if t.idleTimeout > 0 {
			clock := t.idleClock()
			t.lastRead.Store(int64(clock.since()))
			t.idle = clock.afterFunc(t.idleTimeout, t.checkIdle)
		}
	}
	t.pollMu.Unlock()
	if err != nil {
		t.stopReading(err)
	}
}

// pollRead reads until the socket has nothing more, handing each complete
// message to the engine in order, then asks the poller for the next time.
// The poller runs it in a new goroutine for each readiness report, never
// two at once for one connection.
func (t *Transport) pollRead() {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	for {
		if t.readingEnded() {
			return
		}
		err := t.readOnce()
		if err == errWouldBlock {
			t.pollMu.Lock()
			id := t.pollID
			t.pollMu.Unlock()
			if err := sharedPoller().arm(t.raw, id); err != nil {
				t.stopReading(err)
			}
			return
		}
		if err != nil {
			t.stopReading(err)
			return
		}
	}
}

// readOnce makes one read(2) and hands on the complete frames it finished.
// It returns errWouldBlock when the socket is drained: it had nothing, or
// less than the buffer could take (whatever arrives after that read makes
// the re-armed registration report at once, so a second read(2) to see
// EAGAIN would only cost a system call). Between frames the bytes are read
// into a pooled scratch buffer, so that an idle connection keeps no read
// buffer of its own; only a frame split across reads is kept (in
// t.partial), growing with what arrives.
func (t *Transport) readOnce() error {
	if len(t.partial) == 0 {
		scratch := readBuffers.Get().(*[4096]byte)
		defer readBuffers.Put(scratch)
		n, err := t.readSocket(scratch[:])
		if n == 0 {
			return err
		}
		rest, ferr := t.frames.feed(scratch[:n], t.onFrame)
		if ferr != nil {
			return ferr
		}
		if len(rest) > 0 {
			t.partial = append(make([]byte, 0, max(2*len(rest), 1024)), rest...)
		}
		return drained(n, len(scratch))
	}
	if cap(t.partial)-len(t.partial) < 1024 {
		// Grow as the frame arrives (append's doubling), not by the length
		// its header claims.
		t.partial = slices.Grow(t.partial, 1024)
	}
	room := cap(t.partial) - len(t.partial)
	n, err := t.readSocket(t.partial[len(t.partial):cap(t.partial)])
	if n == 0 {
		return err
	}
	t.partial = t.partial[:len(t.partial)+n]
	rest, ferr := t.frames.feed(t.partial, t.onFrame)
	switch {
	case ferr != nil:
		return ferr
	case len(rest) == 0:
		t.partial = nil
	case len(rest) < len(t.partial):
		t.partial = t.partial[:copy(t.partial, rest)]
	}
	return drained(n, room)
}

// drained is readOnce's answer after a read of n bytes into room.
func drained(n, room int) error {
	if n < room {
		return errWouldBlock
	}
	return nil
}

// readSocket reads what the kernel holds for the connection into buf,
// without waiting: errWouldBlock when it holds nothing, errCut when the
// client closed the connection.
func (t *Transport) readSocket(buf []byte) (int, error) {
	t.rbuf, t.rn, t.rerr = buf, 0, nil
	err := t.raw.Read(t.readFn)
	n, rerr := t.rn, t.rerr
	t.rbuf, t.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0:
		return 0, errCut
	}
	if n > 0 {
		t.lastRead.Store(int64(t.idleClock().since()))
	}
	return n, nil
}

// readFD is the raw read behind readSocket; it never asks the runtime to
// wait for the socket.
func (t *Transport) readFD(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), t.rbuf)
		if err == syscall.EINTR {
			continue
		}
		t.rn, t.rerr = max(n, 0), err
		return true
	}
}

// onFrame acts on one message or control frame from the client.
func (t *Transport) onFrame(op byte, payload []byte) error {
	switch op {
	case opText:
		t.message(websocket.TextMessage, payload)
	case opBinary:
		t.message(websocket.BinaryMessage, payload)
	case opPing:
		t.out.write(appendFrame(nil, opPong, 0, false, payload), false)
	case opClose:
		code, err := closePayload(payload)
		if err != nil {
			return err
		}
		t.out.write(closeFrame(code), false)
		t.out.seal() // nothing may follow the close frame
		return &websocket.CloseError{Code: code}
	}
	return nil
}

// clockStart is what t.lastRead counts from: durations since it are read
// on the monotonic clock, which a step of the wall clock does not move.
var clockStart = time.Now()

// idleClock is the time the idle timeout of polled reads runs on.
type idleClock interface {
	// since is the time since a fixed start.
	since() time.Duration
	// afterFunc calls f in its own goroutine after d, as time.AfterFunc.
	afterFunc(d time.Duration, f func()) idleTimer
}

// idleTimer is the part of *time.Timer the idle timeout uses.
type idleTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// realClock is the idleClock of time.Now and time.AfterFunc.
type realClock struct{}

// since counts from clockStart on the monotonic clock, which a step of the
// wall clock does not move.
func (realClock) since() time.Duration { return time.Since(clockStart) }

func (realClock) afterFunc(d time.Duration, f func()) idleTimer { return time.AfterFunc(d, f) }

// idleClock is the builder's clock, or the real one.
func (t *Transport) idleClock() idleClock {
	if t.builder != nil && t.builder.clock != nil {
		return t.builder.clock
	}
	return realClock{}
}

// checkIdle closes a connection that has sent nothing for idleTimeout, as
// the read deadline does where gorilla reads. Any bytes count, where the
// deadline counted whole messages; a client that trickles one frame is
// still bounded by the engine's ping timeout.
func (t *Transport) checkIdle() {
	t.pollMu.Lock()
	if t.pollEnded {
		t.pollMu.Unlock()
		return
	}
	quiet := t.idleClock().since() - time.Duration(t.lastRead.Load())
	if quiet < t.idleTimeout {
		t.idle.Reset(t.idleTimeout - quiet)
		t.pollMu.Unlock()
		return
	}
	t.pollMu.Unlock()
	t.stopReading(fmt.Errorf("websocket: nothing read for %v: %w", t.idleTimeout, os.ErrDeadlineExceeded))
}

func (t *Transport) readingEnded() bool {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	return t.pollEnded
}

// endPolling stops the polled reading, once; it reports whether this call
// stopped it.
func (t *Transport) endPolling() bool {
	if t.raw == nil {
		return false
	}
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	if t.pollEnded {
		return false
	}
	t.pollEnded = true
	if t.pollID != 0 {
		sharedPoller().remove(t.pollID)
	}
	if t.idle != nil {
		t.idle.Stop()
	}
	return true
}

// stopReading ends the polled reading because of err and closes the
// transport: after a close frame with the status a protocol error calls
// for, and reporting err to the engine (before the close, so that the
// engine gives the error as the reason) unless it is a close.
func (t *Transport) stopReading(err error) {
	if !t.endPolling() {
		return
	}
	var fe *frameError
	if errors.As(err, &fe) {
		t.out.write(closeFrame(fe.code), false)
		t.out.seal() // nothing may follow the close frame
	}
	t.readFailed(err)
	t.OnClose()
}
