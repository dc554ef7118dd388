package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ClientConfig says which Redis to reach and how: the redis.* settings.
// Either URL or Addrs is set.
type ClientConfig struct {
	// URL is a redis:// or rediss:// URL of one Redis server.
	URL string
	// Addrs lists host:port addresses of Sentinels (with MasterName) or,
	// without MasterName, of Redis Cluster nodes.
	Addrs []string
	// MasterName is the Sentinel master name.
	MasterName string
	// Username and Password authenticate with Addrs (a URL carries its
	// own).
	Username, Password string
	// Timeout bounds dialling and each read and write of a command; 0
	// means go-redis's defaults.
	Timeout time.Duration
}

// NewClient builds the go-redis client for cfg: one server for URL,
// Sentinel for Addrs with MasterName, and Redis Cluster for Addrs alone.
// Commands honour their context's deadline and are retried once. go-redis
// logs through a global logger of its own: when log is not nil, those lines
// (dial failures and the like) go to log, at warn level, with component
// go-redis.
func NewClient(cfg ClientConfig, log *slog.Logger) (goredis.UniversalClient, error) {
	var uo *goredis.UniversalOptions
	switch {
	case cfg.URL != "":
		opt, err := goredis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		uo = &goredis.UniversalOptions{
			Addrs: []string{opt.Addr}, Username: opt.Username, Password: opt.Password,
			DB: opt.DB, TLSConfig: opt.TLSConfig,
		}
	case len(cfg.Addrs) > 0:
		uo = &goredis.UniversalOptions{
			Addrs:         cfg.Addrs,
			MasterName:    cfg.MasterName,
			Username:      cfg.Username,
			Password:      cfg.Password,
			IsClusterMode: cfg.MasterName == "",
		}
	default:
		return nil, errors.New("redis: a Redis URL or addresses are required")
	}
	uo.ClientName = "chatd"
	uo.DialTimeout = cfg.Timeout
	uo.ReadTimeout = cfg.Timeout
	uo.WriteTimeout = cfg.Timeout
	uo.ContextTimeoutEnabled = true
	uo.MaxRetries = 1
	if log != nil {
		goredis.SetLogger(clientLogger{log.With("component", "go-redis")})
	}
	return goredis.NewUniversalClient(uo), nil
}

// clientLogger passes go-redis's own log lines to slog at warn level, so
// that they share the format of chatd's logs.
type clientLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
