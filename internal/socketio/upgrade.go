package socketio

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
)

// ReleaseAfterUpgrade hands WebSocket upgrade requests to h with a
// ResponseWriter that forgets net/http's after the connection is hijacked.
//
// The socket.io library keeps the upgrade request's context (request and
// ResponseWriter) for the whole life of the socket, and through the
// ResponseWriter net/http's per-connection state with its 4 kB read and
// 4 kB write buffers, which nothing uses once gorilla/websocket owns the
// connection: about 9 kB of every idle WebSocket connection's heap (see
// bench/RESULTS.md). Polling requests pass through untouched.
func ReleaseAfterUpgrade(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); ok && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w = &upgradeWriter{w: w}
		}
		h.ServeHTTP(w, r)
	})
}

// upgradeWriter is the ResponseWriter of an upgrade request. Before the
// hijack it is net/http's; after it, it answers as net/http's does for a
// hijacked connection, without holding on to it.
type upgradeWriter struct {
	mu sync.Mutex          // guards w
	w  http.ResponseWriter // nil once hijacked
}

func (u *upgradeWriter) writer() http.ResponseWriter {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.w
}

// Header returns the response headers; after the hijack, a map nobody reads.
func (u *upgradeWriter) Header() http.Header {
	if w := u.writer(); w != nil {
		return w.Header()
	}
	return http.Header{}
}

// Write writes the response body; after the hijack it fails as net/http's does.
func (u *upgradeWriter) Write(b []byte) (int, error) {
	if w := u.writer(); w != nil {
		return w.Write(b)
	}
	return 0, http.ErrHijacked
}

// WriteHeader sends the status; after the hijack it does nothing.
func (u *upgradeWriter) WriteHeader(code int) {
	if w := u.writer(); w != nil {
		w.WriteHeader(code)
	}
}

// Flush flushes a response that was not upgraded.
func (u *upgradeWriter) Flush() {
	if f, ok := u.writer().(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack takes the connection over and lets go of net/http's writer.
func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.w == nil {
		return nil, nil, http.ErrHijacked
	}
	hj, ok := u.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("socketio: the connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err == nil {
		u.w = nil
	}
	return conn, rw, err
}
