package warm

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

func TestRunWaitsAndKeepsOrder(t *testing.T) {
	p := New(4, time.Minute)
	var got []int
	for i := range 100 {
		p.Run(func() { got = append(got, i) }) // no lock: Run returns after fn
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("call %d ran as %d: calls of one goroutine must run in order", i, v)
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d calls ran, want 100", len(got))
	}
	if n := p.Workers(); n != 1 {
		t.Fatalf("one caller after another started %d workers, want 1 reused", n)
	}
}

// goid returns the calling goroutine's id, from its stack header.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

func TestRunReusesOneGoroutine(t *testing.T) {
	p := New(4, time.Minute)
	caller := goid()
	var first string
	p.Run(func() { first = goid() })
	if first == caller {
		t.Fatal("Run called fn on the caller's goroutine with a worker free to start")
	}
	for i := range 20 {
		var id string
		p.Run(func() { id = goid() })
		if id != first {
			t.Fatalf("call %d ran on goroutine %s, want the warm worker %s", i, id, first)
		}
	}
}

func TestRunOnCallerWhenFull(t *testing.T) {
	p := New(1, time.Minute)
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		p.Run(func() {
			close(started)
			<-release
		})
	})
	<-started
	// The only worker is busy: this call must not wait for it.
	done := make(chan struct{})
	go func() {
		p.Run(func() {})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run waited for a busy worker instead of running on the caller")
	}
	close(release)
	wg.Wait()
	if n := p.Workers(); n != 1 {
		t.Fatalf("%d workers, want at most 1", n)
	}
}

func TestRunRaisesPanicOnCaller(t *testing.T) {
	p := New(2, time.Minute)
	func() {
		defer func() {
			v := recover()
			p, ok := v.(*Panic)
			if !ok || p.Value != "boom" || !strings.Contains(string(p.Stack), "warm_test.go") {
				t.Fatalf("recovered %#v, want a *Panic with the function's \"boom\" and the worker's stack", v)
			}
		}()
		p.Run(func() { panic("boom") })
		t.Fatal("Run returned after a panic")
	}()
	// The worker survived and still works.
	ran := false
	p.Run(func() { ran = true })
	if !ran || p.Workers() != 1 {
		t.Fatalf("after a panic: ran %v with %d workers, want true with 1", ran, p.Workers())
	}
}

// fakeClock makes idle timers that fire when the test says.
type fakeClock struct {
	mu     sync.Mutex // guards timers
	timers []*fakeTimer
}

// fakeTimer is an idleTimer of a fakeClock.
type fakeTimer struct{ c chan time.Time }

func (t *fakeTimer) C() <-chan time.Time { return t.c }

// Reset drops a firing not yet received, as time.Timer's Reset does.
func (t *fakeTimer) Reset(time.Duration) bool {
	select {
	case <-t.c:
	default:
	}
	return true
}

func (t *fakeTimer) Stop() bool { return true }

func (c *fakeClock) newTimer(time.Duration) idleTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

// fire makes every timer fire, as if their duration had passed.
func (c *fakeClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		select {
		case t.c <- time.Now():
		default:
		}
	}
}

func TestIdleWorkersLeave(t *testing.T) {
	clock := new(fakeClock)
	p := New(8, time.Hour)
	p.newTimer = clock.newTimer
	var wg sync.WaitGroup
	hold := make(chan struct{})
	for range 4 {
		wg.Go(func() { p.Run(func() { <-hold }) })
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return p.Workers() == 4 }, "4 concurrent calls to start 4 workers")
	// Busy workers stay however long they work.
	clock.fire()
	if n := p.Workers(); n != 4 {
		t.Fatalf("%d workers while 4 calls run, want 4", n)
	}
	close(hold)
	wg.Wait()
	// A worker that is between its call and its idle wait resets its timer
	// and drops a firing: fire until every worker has left.
	testkit.Eventually(t, 5*time.Second, func() bool {
		clock.fire()
		return p.Workers() == 0
	}, "the idle workers to leave")
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("a call after the workers left did not run")
	}
}

func TestRunGoexitEndsTheCaller(t *testing.T) {
	p := New(2, time.Minute)
	done := make(chan bool)
	go func() {
		defer func() { done <- true }()
		p.Run(runtime.Goexit)
		t.Error("Run returned after the function called runtime.Goexit")
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a caller whose function called runtime.Goexit never ended")
	}
	if n := p.Workers(); n != 0 {
		t.Fatalf("%d workers after the only one ended with runtime.Goexit, want 0", n)
	}
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("the pool does not run calls after a runtime.Goexit")
	}
}
