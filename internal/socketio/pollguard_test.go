package socketio

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A polling data request of a session and chatd's own close of that session
// never overlap; other sessions are not held up; no lock outlives its users.
func TestPollGuardSerializesASession(t *testing.T) {
	g := NewPollGuard()
	entered, release := make(chan struct{}), make(chan struct{})
	h := g.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	}))
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/socket.io/?EIO=4&transport=polling&sid=abc", nil))
		close(done)
	}()
	<-entered

	closed := make(chan struct{})
	go func() {
		unlock := g.lock("abc") // what close takes before closing the transport
		close(closed)
		unlock()
	}()
	other := g.lock("xyz")
	other()
	select {
	case <-closed:
		t.Fatal("a close of the session ran during its data request")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	<-closed
	g.mu.Lock()
	n := len(g.locks)
	g.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d session locks left behind", n)
	}
}
