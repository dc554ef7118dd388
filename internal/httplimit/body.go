package httplimit

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// BodyTimeout bounds the reading of a request body to d from the moment
// the handler starts: a client that sends its body a byte at a time, or
// never, has its connection cut at d instead of holding it open. Requests
// without a body (GET, a WebSocket upgrade, a long-polling GET) are left
// alone, so a long poll or a WebSocket lives as long as it needs. The
// deadline is lifted once the body has been read to its end, so that a
// handler that takes longer than d to answer is not cut.
func BodyTimeout(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			// Not a real connection (a test recorder, HTTP/2 without
			// support): nothing to bound.
			h.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline when the body is read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
