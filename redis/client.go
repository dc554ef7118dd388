package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
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
	if uo.IsClusterMode {
		return newClusterClient(uo), nil
	}
	return goredis.NewUniversalClient(uo), nil
}

// clusterStateReload bounds how old a Redis Cluster client's map of slots
// to masters may get while commands succeed. go-redis's default is 60 s and
// it redraws the map on its own only when a node answers MOVED or ASK: a
// master that crashed answers nothing, so for up to a minute after its
// replica took over every command for its slots failed with a dial error.
const clusterStateReload = 5 * time.Second

// clusterReloadEvery is the least time between two reloads that failing
// commands ask for, so that an outage of the whole cluster, where every
// command fails, does not turn into a stream of CLUSTER SLOTS calls.
const clusterReloadEvery = 250 * time.Millisecond

// newClusterClient builds the Redis Cluster client for uo: it reloads the
// slot map every clusterStateReload and, through clusterReloadHook, as soon
// as a node cannot be dialled or a command fails in a way a newer map may
// cure.
func newClusterClient(uo *goredis.UniversalOptions) *goredis.ClusterClient {
	opt := uo.Cluster()
	opt.ClusterStateReloadInterval = clusterStateReload
	c := goredis.NewClusterClient(opt)
	h := &clusterReloadHook{client: c}
	c.AddHook(h)
	// The cluster client's own hooks never see a dial: those happen in the
	// clients of the nodes, created as the slot map names them. A failed
	// dial is the first sign of a crashed master; the command itself
	// fails only after go-redis has tried the node several times.
	c.OnNewNode(func(node *goredis.Client) { node.AddHook(nodeDialHook{h}) })
	return c
}

// clusterReloadHook asks its cluster client to reload the slot map after a
// command or pipeline failed in a way a newer map may cure: no answer from
// the node (a crashed master whose replica has been promoted since), or
// CLUSTERDOWN (the cluster was electing a new master).
type clusterReloadHook struct {
	client *goredis.ClusterClient
	last   atomic.Int64 // Unix nanoseconds of the last reload asked for
}

// DialHook implements goredis.Hook; the cluster client dials nothing itself.
func (h *clusterReloadHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook implements goredis.Hook.
func (h *clusterReloadHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

// ProcessPipelineHook implements goredis.Hook.
func (h *clusterReloadHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

// nodeDialHook is the hook of each node's client: a dial that fails asks
// for a reload of the slot map.
type nodeDialHook struct{ reload *clusterReloadHook }

// DialHook implements goredis.Hook.
func (h nodeDialHook) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			h.reload.after(err)
		}
		return conn, err
	}
}

// ProcessHook implements goredis.Hook; commands are left to the cluster
// client's hook.
func (nodeDialHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }

// ProcessPipelineHook implements goredis.Hook.
func (nodeDialHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// after reloads the slot map when err calls for it, at most once every
// clusterReloadEvery. The reload runs in the background (go-redis's
// ReloadState), so the failed command returns at once.
func (h *clusterReloadHook) after(err error) {
	if !staleSlotMap(err) {
		return
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(clusterReloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.client.ReloadState(context.Background())
}

// staleSlotMap reports whether a command's error may come from a slot map
// that no longer matches the cluster: anything but an answer of Redis's own
// (a key that does not exist, a script's error, a wrong type) or the
// caller giving up, and among Redis's answers CLUSTERDOWN.
func staleSlotMap(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply goredis.Error
	if errors.As(err, &reply) {
		return strings.HasPrefix(reply.Error(), "CLUSTERDOWN")
	}
	return true
}

// clientLogger passes go-redis's own log lines to slog at warn level, so
// that they share the format of chatd's logs.
type clientLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
