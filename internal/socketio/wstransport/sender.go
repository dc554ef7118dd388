package wstransport

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrSlowConsumer is why a connection is closed when its send buffer would
// grow past its limit: the client is not reading as fast as it is sent to.
var ErrSlowConsumer = errors.New("send buffer full: the client does not read fast enough")

// closeWait bounds how long a closing connection keeps flushing what is
// queued for it (a disconnect packet, say) before its socket is closed.
const closeWait = 2 * time.Second

// sender writes WebSocket frames to one connection without ever blocking its
// caller. A frame is written at once with a non-blocking write(2) when
// nothing is queued before it, which is the common case: the caller (the
// goroutine that broadcasts a message to a room, say) pays one system call
// and no goroutine or copy. What the kernel does not take is queued, and a
// goroutine writes the queue out with writev(2) until it is empty, then
// exits. The queue is bounded: a frame that would take it past limit bytes
// closes the connection instead (the client reconnects and catches up
// through connection state recovery or history), and a volatile frame is
// dropped whenever anything is queued.
type sender struct {
	conn  net.Conn
	raw   syscall.RawConn // nil when the connection has no file descriptor of its own (TLS)
	limit int             // bytes, see Builder.SendBufferBytes
	stats *Stats
	// onClosed, if set, runs in a goroutine of its own once the connection
	// is closed (the caller may hold locks that its listeners need).
	onClosed func()

	rawWrite func(fd uintptr) bool // s.writeFD, bound once: no closure per write

	mu       sync.Mutex // guards the following fields
	queue    [][]byte   // frames (the first possibly a tail) not yet handed to the kernel
	queued   int        // bytes in queue, plus those the flusher is writing
	flushing bool       // a flusher goroutine owns the connection's writes
	sealed   bool       // no more frames (a close frame was the last); see seal
	closing  bool       // no more frames; close once the queue is written
	closed   bool       // the connection is closed
	err      error      // why the sender stopped, nil after a plain close
	// The state of the non-blocking write in progress (see tryWrite).
	wbuf []byte
	wn   int
	werr error
}

func newSender(conn net.Conn, limit int, stats *Stats) *sender {
	s := &sender{conn: conn, limit: limit, stats: stats}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
			s.rawWrite = s.writeFD
		}
	}
	return s
}

// write sends frame, or queues it behind frames still waiting. It reports
// false when the frame was dropped: the sender is closed, the frame is
// volatile and the client is behind, or the frame overflowed the limit (and
// the connection is now being closed). frame must not be modified afterwards;
// it may be shared with other senders.
func (s *sender) write(frame []byte, volatile bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealed || s.closing || s.closed {
		return false
	}
	if s.flushing {
		if volatile {
			s.stats.VolatileDropped.Add(1)
			return false
		}
		if s.queued+len(frame) > s.limit {
			s.failLocked(ErrSlowConsumer)
			s.stats.SlowConsumers.Add(1)
			return false
		}
		s.queue = append(s.queue, frame)
		s.queued += len(frame)
		s.stats.Queued.Add(int64(len(frame)))
		return true
	}
	n, err := s.tryWrite(frame)
	if err != nil {
		s.failLocked(err)
		return false
	}
	if n == len(frame) {
		return true
	}
	// The kernel's buffer is full: the rest of the frame goes first in the
	// queue, even a volatile one (half a frame cannot be taken back).
	rest := frame[n:]
	s.queue = append(s.queue, rest)
	s.queued += len(rest)
	s.stats.Queued.Add(int64(len(rest)))
	s.flushing = true
	go s.flush()
	return true
}

// tryWrite writes as much of b as the kernel takes without waiting. Without
// a file descriptor it writes nothing and leaves b to the flusher. It is
// called with mu held.
func (s *sender) tryWrite(b []byte) (int, error) {
	if s.raw == nil {
		return 0, nil
	}
	s.wbuf, s.wn, s.werr = b, 0, nil
	err := s.raw.Write(s.rawWrite)
	n, werr := s.wn, s.werr
	s.wbuf, s.werr = nil, nil
	if err == nil {
		err = werr
	}
	return n, err
}

// writeFD writes s.wbuf to fd until the kernel stops taking it (EAGAIN) or
// fails; it never asks the runtime to wait for the socket to be writable.
func (s *sender) writeFD(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		m, e := syscall.Write(int(fd), s.wbuf[s.wn:])
		if m > 0 {
			s.wn += m
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return true
		case e != nil:
			s.werr = e
			return true
		case m == 0:
			s.werr = syscall.EIO
			return true
		}
	}
	return true
}

// flush writes the queue out, blocking, until it is empty; then it hands
// writes back to write's non-blocking path, or closes the connection when
// the sender is closing.
func (s *sender) flush() {
	for {
		s.mu.Lock()
		if s.closed {
			s.releaseLocked()
			s.mu.Unlock()
			return
		}
		if len(s.queue) == 0 {
			s.flushing = false
			s.queue = nil // do not keep a grown slice on an idle connection
			if s.closing {
				s.closeLocked()
			}
			s.mu.Unlock()
			return
		}
		batch := net.Buffers(s.queue)
		size := 0
		for _, b := range batch {
			size += len(b)
		}
		s.queue = nil
		closing := s.closing
		s.mu.Unlock()

		if closing {
			_ = s.conn.SetWriteDeadline(time.Now().Add(closeWait))
		}
		_, err := batch.WriteTo(s.conn)

		s.mu.Lock()
		s.queued -= size
		s.stats.Queued.Add(-int64(size))
		if err != nil && !s.closed {
			if closing {
				s.closeLocked() // the close deadline passed: not the client's error
			} else {
				s.failLocked(err)
			}
		}
		s.mu.Unlock()
	}
}

// seal refuses every frame after those already written or queued, without
// closing the connection yet: after a close frame nothing may follow, not
// even the close frame the engine writes when it learns of the close.
func (s *sender) seal() {
	s.mu.Lock()
	s.sealed = true
	s.mu.Unlock()
}

// close stops the sender: it closes the connection at once when nothing is
// queued, or after the flusher has written the queue (within closeWait).
func (s *sender) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.closed {
		return
	}
	s.closing = true
	if s.flushing {
		// A deadline for a flusher that is already blocked in write(2).
		_ = s.conn.SetWriteDeadline(time.Now().Add(closeWait))
		return
	}
	s.closeLocked()
}

// failLocked closes the connection because of err. A write that failed
// because the client is gone (it reset the connection) is the client's
// close, not a failure.
func (s *sender) failLocked(err error) {
	if s.closed {
		return
	}
	if !peerGone(err) {
		s.err = err
	}
	s.closeLocked()
}

// peerGone reports whether err says the other end closed or reset the
// connection: ECONNRESET, or EPIPE for a write after the reset.
func peerGone(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (s *sender) closeLocked() {
	s.closed = true
	_ = s.conn.Close()
	if s.onClosed != nil {
		go s.onClosed()
	}
	if !s.flushing {
		s.releaseLocked()
	}
}

// releaseLocked forgets whatever is still queued.
func (s *sender) releaseLocked() {
	if n := s.queued; n > 0 {
		s.stats.Queued.Add(-int64(n))
		s.queued = 0
	}
	s.queue = nil
}

// failure returns why the sender closed the connection, if it did so
// because of an error.
func (s *sender) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
