package server

import (
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// failureLog bounds the warnings logged for failed requests: when Redis is
// down every request of every socket fails the same way, and one line a
// second (with a count of the ones left out) says as much as thousands.
type failureLog struct {
	limiter    *rate.Limiter
	suppressed atomic.Int64
}

func newFailureLog() *failureLog {
	return &failureLog{limiter: rate.NewLimiter(rate.Every(time.Second), 5)}
}

// logFailure logs a warning unless too many were logged just now.
func (s *Server) logFailure(msg string, args ...any) {
	if !s.failures.limiter.Allow() {
		s.failures.suppressed.Add(1)
		return
	}
	if n := s.failures.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	s.log.Warn(msg, args...)
}
