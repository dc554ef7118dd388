package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatd/chatd/internal/httplimit"
)

// HTTP bounds used when the http.* settings are zero (an embedder that
// skipped package config): those of config.Default.
const (
	defaultIdleTimeout    = 60 * time.Second
	defaultHeaderTimeout  = 10 * time.Second
	defaultBodyTimeout    = 15 * time.Second
	defaultMaxHeaderBytes = 32 << 10
)

// httpServer returns an http.Server for h with the http.* bounds: idle
// keep-alive connections close after http.idle_timeout, headers must come
// within http.header_timeout and fit in http.max_header_bytes, and a body
// must be read within http.body_timeout. There is no overall read or write
// timeout: a long poll and a WebSocket live as long as they need.
func (m *Main) httpServer(h http.Handler) *http.Server {
	c := m.cfg.HTTP
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	maxHeader := c.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = defaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           httplimit.BodyTimeout(h, orDefault(c.BodyTimeout, defaultBodyTimeout)),
		ReadHeaderTimeout: orDefault(c.HeaderTimeout, defaultHeaderTimeout),
		IdleTimeout:       orDefault(c.IdleTimeout, defaultIdleTimeout),
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
}

// metricsListener serves /metrics on metrics.listen, when it is set, apart
// from the public listener.
type metricsListener struct {
	http   *http.Server
	ln     net.Listener
	served chan struct{}
}

// serveMetrics listens on metrics.listen (so that a port error surfaces at
// once) and serves /metrics there in the background; it does nothing when
// metrics.listen is empty or metrics are off.
func (m *Main) serveMetrics(reg *prometheus.Registry) error {
	if m.cfg.Metrics.Listen == "" || !m.cfg.Metrics.Enabled {
		return nil
	}
	ln, err := net.Listen("tcp", m.cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ml := &metricsListener{http: m.httpServer(mux), ln: ln, served: make(chan struct{})}
	m.metrics = ml
	go func() {
		defer close(ml.served)
		if err := ml.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "err", err)
		}
	}()
	m.log.Info("serving /metrics", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr is the address of the metrics.listen listener, nil without one.
func (m *Main) MetricsAddr() net.Addr {
	if m.metrics == nil {
		return nil
	}
	return m.metrics.ln.Addr()
}

// closeMetrics stops the metrics listener; it is the last thing to stop, so
// that a drain can be watched to its end.
func (m *Main) closeMetrics() {
	if m.metrics == nil {
		return
	}
	_ = m.metrics.http.Close()
	<-m.metrics.served
}
