package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/api"
	"github.com/chatd/chatd/config"
	"github.com/chatd/chatd/internal/idlemem"
	chatdredis "github.com/chatd/chatd/redis"
	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
	"github.com/chatd/chatd/web"
	"github.com/chatd/chatd/web/adminui"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

// errUsage marks errors that are the caller's (exit code 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// run is chatd's whole program: it reads the command line and the
// environment, and serves until ctx ends (SIGTERM, SIGINT).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
	case "check-config":
		return checkConfig(args, getenv, stdout)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout)
	case "version":
		fmt.Fprintf(stdout, "chatd %s (%s)\n", version, commit)
		return nil
	case "hash-password":
		return hashPassword(args, stdin, stdout)
	case "migrate-keys":
		return migrateKeys(ctx, args, getenv, stdout)
	default:
		return fmt.Errorf("%w: unknown command %q (commands: serve, check-config, healthcheck, hash-password, migrate-keys, version)", errUsage, cmd)
	}
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	m, err := newMain(ctx, *cfg, stderr)
	if err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		return err
	}
	<-ctx.Done()
	return m.Close()
}

// loadConfig loads the settings; it returns nil, nil after printing --help.
func loadConfig(args []string, getenv func(string) string, stdout io.Writer) (*config.Config, error) {
	cfg, err := config.Load(args, getenv)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(stdout, config.Usage())
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return cfg, nil
}

func checkConfig(args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	out, err := cfg.Masked().YAML()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# chatd %s: configuration is valid\n%s", version, out)
	return nil
}

// healthcheck asks a running chatd's /healthz (for container health checks,
// where no curl is at hand).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", res.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// Main is a wired chatd: the configuration, the stores, the socket.io server
// and the HTTP server. End-to-end tests start it on 127.0.0.1:0.
type Main struct {
	cfg        config.Config
	log        *slog.Logger
	srv        *server.Server
	http       *http.Server
	ln         net.Listener
	closer     []func() error // run in reverse order by Close
	reaper     context.CancelFunc
	reducer    context.CancelFunc
	memMetrics *memoryMetrics
	reg        *prometheus.Registry
	metrics    *metricsListener // on metrics.listen; nil without one
	redisLoss  *redisLoss       // in cluster mode; see redisloss.go
	// In cluster mode, the Redis client and presence (stores.go).
	redisClient   goredis.UniversalClient
	redisPresence *chatdredis.RedisPresence
	// layoutPending is set while the Redis key layout could not be
	// checked (Redis did not answer at start); the instance is not ready.
	layoutPending atomic.Bool
	events        *eventsRun                  // with hooks.events.url; see events.go
	closeHooks    func(context.Context) error // waits for $disconnect posts; nil without API Gateway mode
	served        chan struct{}
	closeOnce     sync.Once
	closeErr      error
}

// newMain wires chatd from cfg.
func newMain(ctx context.Context, cfg config.Config, logOut io.Writer) (*Main, error) {
	m := &Main{cfg: cfg, served: make(chan struct{})}
	hopts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(logOut, hopts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(logOut, hopts)
	}
	m.log = slog.New(h).With("instance", cfg.Instance.ID)
	warnDevMode(m.log, cfg)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.memMetrics = newMemoryMetrics(reg)
	m.reg = reg

	st, deps, err := m.stores(ctx, cfg, reg)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	chat, err := rooms.NewChat(rooms.Limits{
		MessageBytes: cfg.Limits.MessageBytes,
		RoomsPerUser: cfg.Limits.RoomsPerUser,
	}, st)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	pub, err := cfg.Auth.JWT.PublicKey()
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("auth.jwt.public_key_file: %w", err)
	}
	policies, err := cfg.Rooms.ParsedPolicies()
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("rooms.policies: %w", err)
	}
	scfg := server.Config{
		AuthMode:                 cfg.Auth.Mode,
		JWTSecret:                []byte(cfg.Auth.JWT.Secret),
		JWTPublicKey:             pub,
		DevInsecure:              devInsecure(cfg),
		JWTChecks:                jwtChecks(cfg),
		RoomPolicies:             policies,
		MessageBytes:             cfg.Limits.MessageBytes,
		PayloadBytes:             cfg.Limits.PayloadBytes,
		EventsPerSecond:          cfg.Limits.EventsPerSecond,
		EventBurst:               cfg.Limits.EventBurst,
		RateStrikes:              cfg.Limits.RateStrikes,
		SendBufferBytes:          cfg.Limits.SendBufferBytes,
		RecoveryMaxDisconnection: cfg.Recovery.MaxDisconnection,
		RecoveryMaxPackets:       cfg.Recovery.MaxPackets,
		RecoveryBufferLength:     cfg.Recovery.StreamLength,
		CORSOrigins:              cfg.CORS.Origins,
		RequestTimeout:           requestTimeout(cfg),
		InstanceID:               cfg.Instance.ID,
		Version:                  version,
		Metrics:                  cfg.Metrics.Enabled && cfg.Metrics.Listen == "",
		Pprof:                    cfg.Debug.Pprof,
	}
	scfg.TrustedProxies = cfg.HTTP.TrustedProxies
	scfg.ConnLimits = server.ConnLimits{
		SocketsPerUser:        cfg.Limits.SocketsPerUser,
		ConnectionsPerAddress: cfg.Limits.ConnectionsPerAddress,
		HandshakesPerSecond:   cfg.Limits.HandshakesPerSecond,
		Connections:           cfg.Limits.Connections,
		UserEventsPerSecond:   cfg.Limits.UserEventsPerSecond,
		UserEventBurst:        cfg.Limits.UserEventBurst,
	}
	if cfg.Web.Enabled {
		scfg.Web = web.Handler()
	}
	if cfg.Admin.Enabled() {
		scfg.Admin = server.AdminConfig{
			Username:     cfg.Admin.Username,
			PasswordHash: []byte(cfg.Admin.PasswordHash),
			ReadOnly:     cfg.Admin.ReadOnly,
			SessionTTL:   cfg.Admin.SessionTTL,
		}
	}
	deps.Chat = chat
	deps.Logger = m.log
	deps.Registry = reg
	if deps.Events, err = m.newEvents(ctx, cfg, reg); err != nil {
		_ = m.Close()
		return nil, err
	}
	hooksDeps, closeHooks, err := newHooks(cfg, reg, m.log)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	deps.Hooks = hooksDeps
	m.closeHooks = closeHooks
	m.srv, err = server.New(scfg, deps)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	// The server API enters at the same rules (chat) and delivery as the
	// sockets do, and is served beside them.
	acfg := api.Config{
		Token:              cfg.API.Token,
		GatewayEvent:       cfg.API.GatewayEvent,
		AWSAccessKeyID:     cfg.API.AWSAccessKeyID,
		AWSSecretAccessKey: cfg.API.AWSSecretAccessKey,
		Rate:               cfg.API.Rate,
		Burst:              cfg.API.Burst,
		RequestTimeout:     scfg.RequestTimeout,
	}
	apiHandler, err := api.New(acfg, api.Deps{Chat: chat, Delivery: m.srv.Delivery(), Members: m.srv, Guard: m.srv, Logger: m.log, Registry: reg})
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	for _, p := range api.Patterns() {
		m.srv.Handle(p, apiHandler)
	}
	if cfg.Admin.Enabled() {
		// The UI's page; its socket.io namespace is /admin on the same server.
		m.srv.Handle(adminui.Prefix, adminui.Handler())
		m.log.Info("Admin UI on", "path", adminui.Prefix, "namespace", server.AdminNamespace, "readonly", cfg.Admin.ReadOnly, "ui_built", adminui.Built())
	}
	return m, nil
}

// requestTimeout bounds one request's storage work: a few Redis commands.
func requestTimeout(cfg config.Config) time.Duration {
	if cfg.Redis.URL == "" && len(cfg.Redis.Addrs) == 0 {
		return 5 * time.Second
	}
	return 2 * cfg.Redis.Timeout
}

// Run listens (so that a port error surfaces at once) and serves in the
// background.
func (m *Main) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.ln = ln
	if err := m.serveMetrics(m.reg); err != nil {
		_ = ln.Close()
		return err
	}
	m.http = m.httpServer(m.srv)
	go func() {
		defer close(m.served)
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http server stopped", "err", err)
		}
	}()
	if m.events != nil {
		m.events.start()
	}
	if clustered(m.cfg) {
		// Only other instances can crash away from this one's presence.
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		m.reaper = cancel
		go m.reap(rctx)
	}
	if m.cfg.Memory.ReleaseWhenIdle || m.cfg.Memory.BurstGCPercent > 0 {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		m.reducer = cancel
		if m.cfg.Memory.ReleaseWhenIdle {
			go idlemem.Run(rctx, idlemem.Options{OnRelease: m.memoryReleased})
		}
		if m.cfg.Memory.BurstGCPercent > 0 {
			go idlemem.RunBurst(rctx, idlemem.BurstOptions{
				GCPercent: m.cfg.Memory.BurstGCPercent,
				Count:     m.srv.Sockets,
				OnBurst:   m.connectionBurst,
			})
		}
	}
	m.log.Info("chatd serving", "addr", ln.Addr().String(), "version", version,
		"cluster", m.cfg.Redis.URL != "" || len(m.cfg.Redis.Addrs) > 0, "auth", m.cfg.Auth.Mode)
	return nil
}

// memoryReleased logs and counts a release of idle memory.
func (m *Main) memoryReleased(before, after uint64, took time.Duration) {
	m.memMetrics.releases.Inc()
	if before > after {
		m.memMetrics.released.Add(float64(before - after))
	}
	m.log.Debug("released idle memory to the system", "held_before_mb", before>>20, "held_after_mb", after>>20, "took", took)
}

// connectionBurst logs and counts the start and end of a connection burst.
func (m *Main) connectionBurst(start bool) {
	if start {
		m.memMetrics.bursts.Inc()
		m.log.Debug("connection burst: garbage collector target lowered", "gc_percent", m.cfg.Memory.BurstGCPercent)
		return
	}
	m.log.Debug("connection burst over: garbage collector target restored")
}

// Addr is the address Run listens on.
func (m *Main) Addr() net.Addr { return m.ln.Addr() }

// reap periodically announces users of crashed instances offline.
func (m *Main) reap(ctx context.Context) {
	t := time.NewTicker(max(time.Second, m.cfg.Presence.TTL/3))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, requestTimeout(m.cfg))
			m.srv.ReapOffline(rctx)
			m.checkRedisData(rctx)
			cancel()
		}
	}
}

// Close drains and stops chatd, in stages under shutdown.timeout: /readyz
// says 503 and new sessions are refused, sockets are moved away in batches,
// the HTTP server stops, then the adapter and Redis close. It is idempotent.
// A failure of the last stage (Redis unreachable while this instance says
// goodbye) is logged, not returned: what it leaves behind, this instance's
// presence entry, expires by itself after presence.ttl, and a drain that did
// its work ends in exit status 0.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

// httpShutdownGrace bounds the wait for HTTP requests in flight once the
// drain has closed every Engine.IO session.
const httpShutdownGrace = 5 * time.Second

func (m *Main) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Shutdown.Timeout)
	defer cancel()
	if m.reaper != nil {
		m.reaper()
	}
	if m.reducer != nil {
		m.reducer()
	}
	if m.srv != nil {
		m.log.Info("shutting down", "drain", m.cfg.Shutdown.Drain, "timeout", m.cfg.Shutdown.Timeout)
		m.srv.Drain(ctx, m.cfg.Shutdown.Drain)
	}
	if m.http != nil {
		// After the drain every Engine.IO session is closed, so what is
		// left are requests in flight (an API call, a last poll): they get
		// httpShutdownGrace, then their connections are closed. A long-poll
		// the library failed to answer would otherwise hold the shutdown
		// for all of shutdown.timeout.
		hctx, hcancel := context.WithTimeout(ctx, httpShutdownGrace)
		err := m.http.Shutdown(hctx)
		hcancel()
		if err != nil {
			m.log.Warn("http shutdown", "err", err)
			_ = m.http.Close()
		}
		<-m.served
	}
	if m.srv != nil {
		_ = m.srv.Close()
	}
	if m.closeHooks != nil {
		if err := m.closeHooks(ctx); err != nil {
			m.log.Warn("shutdown: $disconnect events still in flight were not waited for", "err", err)
		}
	}
	// After the server, whose drain published the last user.offline
	// events, and before Redis closes.
	m.events.stop(ctx)
	for i := len(m.closer) - 1; i >= 0; i-- {
		if err := m.closer[i](); err != nil {
			m.log.Warn("shutdown: cleanup failed; what it leaves in Redis expires by itself", "err", err)
		}
	}
	m.closeMetrics()
	m.log.Info("stopped")
	return nil
}
