// Package warm runs functions on long-lived goroutines, whose stacks have
// already grown, for callers that would otherwise run them on a goroutine
// that was just started.
//
// The socket.io library starts a goroutine for a socket's packets when its
// queue is idle, so in a chat, where a socket sends now and then, nearly
// every event runs on a new goroutine with the smallest stack. An event that
// reaches Redis calls deep into go-redis, and the runtime grows that stack
// by copying it, two or three times per event: about 8% of an instance's
// CPU in a cluster fan-out profile (see bench/RESULTS.md). A warm worker
// grew its stack once; the hand-off costs two goroutine switches.
package warm

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Pool runs functions on its workers. The zero value is not usable; use
// [New].
type Pool struct {
	idleFor time.Duration
	max     int
	jobPool sync.Pool
	// newTimer starts a worker's idle timer; nil means the real clock.
	// Tests set it so that idling takes no wall time.
	newTimer func(d time.Duration) idleTimer

	mu      sync.Mutex // guards the following fields
	idle    []*worker  // free workers, the most recently used last
	workers int
}

// idleTimer is the part of *time.Timer a worker uses to time its idling.
type idleTimer interface {
	C() <-chan time.Time
	Reset(d time.Duration) bool
	Stop() bool
}

// realTimer is an idleTimer on the real clock.
type realTimer struct{ *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.Timer.C }

func (p *Pool) startTimer() idleTimer {
	if p.newTimer != nil {
		return p.newTimer(p.idleFor)
	}
	return realTimer{time.NewTimer(p.idleFor)}
}

type worker struct {
	jobs chan *job // buffered: a job handed over never waits
}

type job struct {
	fn     func()
	done   chan struct{}
	panic  any  // what fn panicked with (a *Panic), raised again on the caller
	crash  bool // fn panicked
	goexit bool // fn called runtime.Goexit, which the caller then calls too
}

// Panic is what Run panics with when fn panicked on a worker: the value
// and the worker's stack at the panic, which the caller's stack lacks.
type Panic struct {
	Value any
	Stack []byte
}

func (p *Panic) Error() string {
	return fmt.Sprintf("%v\n\nworker goroutine stack:\n%s", p.Value, p.Stack)
}

// Unwrap returns the value when it is an error.
func (p *Panic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// New returns a pool of at most limit workers. A worker starts when a call
// finds none free, and leaves after idle without work, so that goroutines
// and memory go back to their baseline after load. The most recently used
// free worker takes the next call, so a steady load keeps few of them.
func New(limit int, idle time.Duration) *Pool {
	p := &Pool{idleFor: idle, max: max(limit, 1)}
	p.jobPool.New = func() any { return &job{done: make(chan struct{}, 1)} }
	return p
}

// Run calls fn on a worker and returns when fn has returned. Calls from one
// goroutine therefore run one after the other, in order. When every worker
// is busy and there are as many as the limit, fn runs on the calling
// goroutine. A panic in fn is raised again on the calling goroutine as a
// *Panic, and a runtime.Goexit in fn ends the calling goroutine too.
func (p *Pool) Run(fn func()) {
	j := p.jobPool.Get().(*job)
	j.fn = fn
	p.mu.Lock()
	switch {
	case len(p.idle) > 0:
		w := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		p.mu.Unlock()
		w.jobs <- j
	case p.workers < p.max:
		p.workers++
		p.mu.Unlock()
		w := &worker{jobs: make(chan *job, 1)}
		w.jobs <- j
		go p.work(w)
	default:
		p.mu.Unlock()
		j.fn = nil
		p.jobPool.Put(j)
		fn()
		return
	}
	<-j.done
	crash, goexit, v := j.crash, j.goexit, j.panic
	j.fn, j.panic, j.crash, j.goexit = nil, nil, false, false
	p.jobPool.Put(j)
	if crash {
		panic(v)
	}
	if goexit {
		runtime.Goexit()
	}
}

// Workers returns the number of workers there are.
func (p *Pool) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

func (p *Pool) work(w *worker) {
	t := p.startTimer()
	defer t.Stop()
	j := <-w.jobs
	for {
		if !p.call(j) {
			return // runtime.Goexit: this goroutine ends, and call told the caller
		}
		// Free again before the caller wakes, so that its next call finds
		// this worker rather than starting another.
		p.mu.Lock()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		j.done <- struct{}{}
		t.Reset(p.idleFor)
		select {
		case j = <-w.jobs:
		case <-t.C():
			if p.leave(w) {
				return
			}
			// A call took this worker as the timer fired: its job is on
			// the way.
			j = <-w.jobs
		}
	}
}

// leave takes an idle worker out of the pool. It fails when a call has just
// taken the worker: then a job is on its way.
func (p *Pool) leave(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.workers--
			return true
		}
	}
	return false
}

// call runs j's function. It reports false when the function called
// runtime.Goexit; then the worker is gone and the caller has been told.
func (p *Pool) call(j *job) (returned bool) {
	normal := false
	defer func() {
		if normal {
			return
		}
		if v := recover(); v != nil {
			j.crash, j.panic = true, &Panic{Value: v, Stack: debug.Stack()}
			returned = true
			return
		}
		// runtime.Goexit is unwinding this goroutine.
		p.mu.Lock()
		p.workers--
		p.mu.Unlock()
		j.goexit = true
		j.done <- struct{}{}
	}()
	j.fn()
	normal = true
	return true
}
