package wstransport

import (
	"os"
	"sync"
	"syscall"
)

// poller tells connections that have something to read, so that an idle
// connection needs no goroutine blocked in read(2). It is one epoll(7)
// instance watched by one goroutine; every registration is one-shot, so at
// most one goroutine reads a connection at a time, and the reader re-arms the
// registration when the socket has nothing more to give (level-triggered: a
// re-arm with data waiting reports it at once).
//
// The watching goroutine does not block in epoll_wait(2), which would hold a
// thread and, with one CPU for Go, the only P until the runtime's sysmon
// took it back (milliseconds of latency for every other goroutine): the
// epoll descriptor is itself readable when events are waiting, so it is
// handed to the Go runtime's own poller, and epoll_wait runs with a zero
// timeout only once it is.
//
// A registration is known by a number that is never reused, not by its file
// descriptor: an event still in flight for a connection that closed meanwhile
// (its descriptor possibly reused by a new connection) finds no handler and
// is dropped. The kernel forgets a registration when the descriptor closes;
// chatd only ever touches the epoll set through syscall.RawConn.Control,
// which keeps the descriptor open while it runs.
type poller struct {
	epfd int
	file *os.File        // epfd, for the Go runtime's poller
	raw  syscall.RawConn // of file

	mu       sync.Mutex
	handlers map[uint64]func()
	next     uint64
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	// A non-blocking descriptor makes a File the runtime polls.
	file := os.NewFile(uintptr(fd), "epoll")
	raw, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		return nil, err
	}
	p := &poller{epfd: fd, file: file, raw: raw, handlers: make(map[uint64]func())}
	go p.wait()
	return p, nil
}

// wait runs each ready connection's handler in a goroutine of its own.
func (p *poller) wait() {
	events := make([]syscall.EpollEvent, 256)
	var n int
	var werr error
	collect := func(fd uintptr) bool {
		for {
			n, werr = syscall.EpollWait(int(fd), events, 0)
			if werr != syscall.EINTR {
				// Nothing waiting: park until the runtime sees the
				// descriptor readable.
				return werr != nil || n > 0
			}
		}
	}
	for {
		if err := p.raw.Read(collect); err != nil {
			// The descriptor is never closed, so this cannot happen.
			panic("wstransport: polling the epoll descriptor: " + err.Error())
		}
		if werr != nil {
			// epoll_wait fails otherwise only for a bad descriptor or
			// buffer, which this code never passes.
			panic("wstransport: epoll_wait: " + werr.Error())
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			if h := p.handlers[eventID(ev)]; h != nil {
				go h()
			}
		}
		p.mu.Unlock()
	}
}

// eventID and pollEvent carry a 64-bit id in the event's two 32-bit fields;
// the conversions reinterpret bits and cannot overflow.
func eventID(ev syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 //nolint:gosec // bit reinterpretation
}

func pollEvent(id uint64) syscall.EpollEvent {
	return syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))} //nolint:gosec // bit reinterpretation
}

// add registers the connection behind raw; ready runs (in a new goroutine)
// each time it becomes readable after add or arm.
func (p *poller) add(raw syscall.RawConn, ready func()) (uint64, error) {
	p.mu.Lock()
	p.next++
	id := p.next
	p.handlers[id] = ready
	p.mu.Unlock()
	if err := p.ctl(raw, syscall.EPOLL_CTL_ADD, id); err != nil {
		p.remove(id)
		return 0, err
	}
	return id, nil
}

// arm asks again for the next time the connection is readable.
func (p *poller) arm(raw syscall.RawConn, id uint64) error {
	return p.ctl(raw, syscall.EPOLL_CTL_MOD, id)
}

func (p *poller) ctl(raw syscall.RawConn, op int, id uint64) error {
	var err error
	cerr := raw.Control(func(fd uintptr) {
		ev := pollEvent(id)
		err = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// remove forgets a registration; an event already on its way is dropped.
func (p *poller) remove(id uint64) {
	p.mu.Lock()
	delete(p.handlers, id)
	p.mu.Unlock()
}
