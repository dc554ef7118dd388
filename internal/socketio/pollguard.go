package socketio

import (
	"net/http"
	"sync"

	"github.com/zishang520/socket.io/servers/engine/v3"
)

// PollGuard works around a data race in the socket.io library (engine v3.0.6,
// transports/polling.go): closing a long-polling transport from another
// goroutine (DoClose) writes the response headers of a data request (a
// client's POST) that its own handler goroutine may be writing at the same
// moment; the race detector reports it, and two writers of one header map
// can crash the process. chatd closes transports itself (the drain, a
// flooder, a failed socket setup), so it holds a lock per Engine.IO session
// around each polling POST and around each of its own closes: the two never
// overlap. The library's own closes (ping timeout, client close) are out of
// reach. What the library would need: DoClose must not write to a request
// it does not own, or must take the transport's lock.
type PollGuard struct {
	mu    sync.Mutex // guards the following field
	locks map[string]*sessionLock
}

type sessionLock struct {
	mu   sync.Mutex
	refs int // users of this entry; guarded by PollGuard.mu
}

// NewPollGuard returns a PollGuard that holds no lock.
func NewPollGuard() *PollGuard { return &PollGuard{locks: make(map[string]*sessionLock)} }

// lock takes the lock of Engine.IO session sid and returns its unlock.
func (g *PollGuard) lock(sid string) (unlock func()) {
	g.mu.Lock()
	l := g.locks[sid]
	if l == nil {
		l = &sessionLock{}
		g.locks[sid] = l
	}
	l.refs++
	g.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		g.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(g.locks, sid)
		}
		g.mu.Unlock()
	}
}

// Wrap serializes the polling data requests (POST with a sid) that reach h.
func (g *PollGuard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if q := r.URL.Query(); q.Get("transport") == "polling" && q.Get("sid") != "" {
				defer g.lock(q.Get("sid"))()
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Close closes an Engine.IO session's transport without racing its data
// requests; the client sees a transport close and reconnects by itself. It
// must not be called from within a polling data request of the same session
// (the library runs socket.io handlers there), or it waits for itself.
func (g *PollGuard) Close(c engine.Socket) {
	defer g.lock(c.Id())()
	c.Close(false)
}

// Drop is Close for a session whose buffered packets no longer matter
// (one that is closing already): they are discarded, not flushed.
func (g *PollGuard) Drop(c engine.Socket) {
	defer g.lock(c.Id())()
	c.Close(true)
}
