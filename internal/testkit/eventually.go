package testkit

import (
	"fmt"
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition: short enough
// that a test waits little past the moment the condition holds, long enough
// not to busy-loop on the shared CPUs.
const PollInterval = 10 * time.Millisecond

// Condition is what Eventually waits for: a func() bool that reports whether
// it holds, or a func() error that returns nil once it holds and otherwise
// says what is still wrong (the last such error is in the failure message).
type Condition interface {
	func() bool | func() error
}

// Eventually checks cond every PollInterval until it holds, and fails the
// test with msg (formatted with args) when it still does not after timeout.
// Use it for a condition that has no event or channel to wait on; a
// condition that can be waited on directly should be.
func Eventually[C Condition](t testing.TB, timeout time.Duration, cond C, msg string, args ...any) {
	t.Helper()
	EventuallyEvery(t, timeout, PollInterval, cond, msg, args...)
}

// EventuallyEvery is Eventually checking every interval, for a condition
// that is costly to check (a scrape of /metrics allocates, for example).
func EventuallyEvery[C Condition](t testing.TB, timeout, interval time.Duration, cond C, msg string, args ...any) {
	t.Helper()
	check := func() error {
		switch f := any(cond).(type) {
		case func() bool:
			if !f() {
				return errNotYet
			}
			return nil
		case func() error:
			return f()
		}
		panic("unreachable: Condition allows only func() bool and func() error")
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			what := fmt.Sprintf(msg, args...)
			if err == errNotYet {
				t.Fatalf("%s: not within %v", what, timeout)
			}
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

// errNotYet is what a func() bool condition that does not hold yet reports.
var errNotYet = fmt.Errorf("not yet")
