package wstransport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// tcpPair returns the two ends of a loopback TCP connection: the server
// end, with a small send buffer so that it fills quickly, and the client's.
func tcpPair(t *testing.T) (server *net.TCPConn, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	server, client = s.(*net.TCPConn), c.(*net.TCPConn)
	_ = server.SetWriteBuffer(4096)
	_ = client.SetReadBuffer(4096)
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// frames returns n distinct frames of size bytes each.
func frames(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		payload := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		out[i] = MessageFrame(payload)
	}
	return out
}

// fillUntilQueued writes frames until the sender has had to queue one (the
// client does not read), and returns the frames it accepted.
func fillUntilQueued(t *testing.T, s *sender, stats *Stats) [][]byte {
	t.Helper()
	var sent [][]byte
	for i, f := range frames(100000, 1000) {
		if !s.write(f, false) {
			t.Fatalf("frame %d refused before anything was queued", i)
		}
		sent = append(sent, f)
		if stats.Queued.Load() > 0 {
			return sent
		}
	}
	t.Fatal("the kernel took 100 MB without the client reading")
	return nil
}

func TestSenderKeepsOrderAcrossTheQueue(t *testing.T) {
	server, client := tcpPair(t)
	stats := new(Stats)
	s := newSender(server, 1<<30, stats)

	sent := fillUntilQueued(t, s, stats)
	// Some more behind the queue; they must come after it.
	for _, f := range frames(50, 777) {
		if !s.write(f, false) {
			t.Fatal("a frame was refused below the limit")
		}
		sent = append(sent, f)
	}
	want := bytes.Join(sent, nil)
	got := make([]byte, len(want))
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("reading what was sent: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the client received the frames out of order or damaged")
	}
	// The flusher empties the queue and hands writes back.
	testkit.Eventually(t, 5*time.Second, func() error {
		if q := stats.Queued.Load(); q != 0 {
			return fmt.Errorf("Queued = %d", q)
		}
		return nil
	}, "the queue to empty after the client read everything")
	s.mu.Lock()
	flushing := s.flushing
	s.mu.Unlock()
	if flushing {
		t.Fatal("the flusher is still running with nothing queued")
	}
}

func TestSenderDropsVolatileFramesWhileBehind(t *testing.T) {
	server, _ := tcpPair(t)
	stats := new(Stats)
	s := newSender(server, 1<<30, stats)
	fillUntilQueued(t, s, stats)

	if s.write(MessageFrame([]byte(`2["typing",{}]`)), true) {
		t.Fatal("a volatile frame was queued behind a client that is not reading")
	}
	if got := stats.VolatileDropped.Load(); got != 1 {
		t.Fatalf("VolatileDropped = %d, want 1", got)
	}
	if !s.write(MessageFrame([]byte(`2["message",{}]`)), false) {
		t.Fatal("a regular frame was refused below the limit")
	}
}

func TestSenderClosesASlowConsumerAtTheLimit(t *testing.T) {
	server, client := tcpPair(t)
	stats := new(Stats)
	const limit = 64 << 10
	s := newSender(server, limit, stats)
	fillUntilQueued(t, s, stats)

	refused := false
	for _, f := range frames(200, 1000) { // 200 kB more, past the 64 kB limit
		if !s.write(f, false) {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("the sender queued past its limit")
	}
	if got := stats.SlowConsumers.Load(); got != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", got)
	}
	if err := s.failure(); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("failure() = %v, want ErrSlowConsumer", err)
	}
	if s.write(MessageFrame([]byte("x")), false) {
		t.Fatal("a closed sender accepted a frame")
	}
	// The client sees the connection end, and the queue is released.
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading to the end: %v", err)
	}
	testkit.Eventually(t, 5*time.Second, func() error {
		if q := stats.Queued.Load(); q != 0 {
			return fmt.Errorf("Queued = %d", q)
		}
		return nil
	}, "the queue to be released after the connection closed")
}

func TestSenderCloseWritesWhatIsQueuedFirst(t *testing.T) {
	server, client := tcpPair(t)
	stats := new(Stats)
	s := newSender(server, 1<<30, stats)
	sent := fillUntilQueued(t, s, stats)
	last := MessageFrame([]byte(`1`)) // a disconnect packet, say
	if !s.write(last, false) {
		t.Fatal("refused")
	}
	sent = append(sent, last)
	s.close()
	if s.write(MessageFrame([]byte("late")), false) {
		t.Fatal("a closing sender accepted a frame")
	}

	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("reading to the end: %v", err)
	}
	if !bytes.Equal(got, bytes.Join(sent, nil)) {
		t.Fatalf("received %d bytes before the close, want the %d queued", len(got), len(bytes.Join(sent, nil)))
	}
}

func TestSenderCloseGivesUpOnAClientThatNeverReads(t *testing.T) {
	server, client := tcpPair(t)
	stats := new(Stats)
	s := newSender(server, 1<<30, stats)
	fillUntilQueued(t, s, stats)
	start := time.Now()
	s.close()
	// The flusher is stuck in write(2); the close deadline must end it.
	testkit.Eventually(t, closeWait+5*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closed {
			return fmt.Errorf("still open %v after close", time.Since(start))
		}
		return nil
	}, "the close deadline to end a flusher stuck in write(2)")
	_ = client
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// After seal, frames are refused but the connection stays open until close,
// which still writes what came before the seal.
func TestASealedSenderTakesNothingMoreAndStillCloses(t *testing.T) {
	server, client := tcpPair(t)
	s := newSender(server, 1<<30, new(Stats))
	last := closeFrame(1002)
	if !s.write(last, false) {
		t.Fatal("refused")
	}
	s.seal()
	if s.write(closeFrame(1000), false) {
		t.Fatal("a sealed sender accepted a frame")
	}
	_ = client.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], last) {
		t.Fatalf("read %q, %v; want the close frame", buf[:n], err)
	}
	if _, err := client.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("sealing closed the connection or sent more: %v", err)
	}
	s.close()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(buf); err != io.EOF {
		t.Fatalf("after close: %d bytes, %v; want EOF", n, err)
	}
}
