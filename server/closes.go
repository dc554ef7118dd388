package server

import (
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"golang.org/x/time/rate"
)

// closeByClient is the engine's reason for a connection the client closed.
const closeByClient = "transport close"

// Reasons of the connections chatd closes on purpose, as counted in
// chatd_server_closes_total.
const (
	closeDrain    = "drain"
	closeSetup    = "setup failed"
	closeFlooding = "flooding"
)

// closeWatch counts and logs every Engine.IO connection the server closes,
// whatever closed it: chatd on purpose (drain, flooding, a failed setup),
// the library (ping timeout, a parse error, a state it calls invalid) or the
// transport (a slow consumer, a write that failed). A healthy client closed
// by the server shows in chatd_server_closes_total{reason} and in the log
// (info, at most a few lines a second), so that such a close cannot go
// unnoticed.
type closeWatch struct {
	limiter *rate.Limiter
	mu      sync.Mutex         // guards purpose
	purpose map[string]*string // engine id of an open connection -> why chatd closes it ("" while it does not)
}

func newCloseWatch() *closeWatch {
	return &closeWatch{limiter: rate.NewLimiter(rate.Every(time.Second), 10), purpose: make(map[string]*string)}
}

// watchCloses hooks the close of every Engine.IO connection.
func (s *Server) watchCloses() {
	_ = s.io.Engine().On("connection", func(args ...any) {
		conn, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		transport := conn.Transport().Name()
		id := conn.Id()
		s.closes.mu.Lock()
		s.closes.purpose[id] = new(string)
		s.closes.mu.Unlock()
		_ = conn.Once("close", func(args ...any) {
			reason, _ := args[0].(string)
			s.closes.mu.Lock()
			why := *s.closes.purpose[id]
			delete(s.closes.purpose, id)
			s.closes.mu.Unlock()
			onPurpose := why != ""
			if reason == closeByClient && !onPurpose {
				return
			}
			if onPurpose {
				reason = why
			}
			s.metrics.serverCloses.WithLabelValues(reason).Inc()
			if onPurpose || !s.closes.limiter.Allow() {
				return // chatd logged its own reason where it decided
			}
			attrs := []any{"reason", reason, "engine", conn.Id(), "transport", transport}
			if len(args) > 1 && args[1] != nil {
				if err, ok := args[1].(error); ok {
					attrs = append(attrs, "err", err.Error())
				}
			}
			s.log.Info("the server closed a connection", attrs...)
		})
	})
}

// closeConn closes conn's transport on purpose, for why (one of the close
// reasons above), so that the client reconnects by itself.
func (s *Server) closeConn(conn engine.Socket, why string) {
	s.closes.mu.Lock()
	if p := s.closes.purpose[conn.Id()]; p != nil && *p == "" {
		*p = why
	}
	s.closes.mu.Unlock()
	s.polls.Close(conn)
}
