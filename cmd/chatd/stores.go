package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/config"
	chatdredis "github.com/chatd/chatd/redis"
	"github.com/chatd/chatd/redis/sioadapter"
	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// idempotencyTTL is how long a clientMsgId is remembered: retries come
// after a reconnect, within minutes.
const idempotencyTTL = time.Hour

// clustered reports whether cfg names a Redis.
func clustered(cfg config.Config) bool {
	return cfg.Redis.URL != "" || len(cfg.Redis.Addrs) > 0
}

// stores picks the memory stores (single instance) or the Redis ones
// (cluster), and the socket.io adapter that goes with them. What it starts
// is added to m.closer.
func (m *Main) stores(ctx context.Context, cfg config.Config, reg *prometheus.Registry) (rooms.Stores, server.Deps, error) {
	if !clustered(cfg) {
		return rooms.Stores{
			Membership:  rooms.NewMemoryMembership(),
			Presence:    rooms.NewMemoryPresence(),
			History:     rooms.NewMemoryHistoryTTL(cfg.History.Size, cfg.History.TTL),
			Idempotency: rooms.NewMemoryIdempotency(idempotencyTTL),
		}, server.Deps{}, nil
	}
	client, err := chatdredis.NewClient(redisClientConfig(&cfg), m.log)
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	rm := newRedisMetrics(reg)
	client.AddHook(rm)
	m.closer = append(m.closer, client.Close)
	m.redisClient = client
	if err := m.watchRedisData(ctx, client, reg); err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}

	if err := m.checkLayout(ctx, client); err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}

	prefix := cfg.Redis.Prefix
	adapter, err := sioadapter.NewAdapterBuilder(client, sioadapter.AdapterOptions{
		Prefix:               prefix,
		InstanceID:           cfg.Instance.ID,
		RequestTimeout:       2 * cfg.Redis.Timeout,
		PublishTimeout:       cfg.Redis.Timeout,
		Logger:               m.log,
		RecoveryStreamLength: int64(cfg.Recovery.StreamLength),
		RecoveryMaxPackets:   cfg.Recovery.MaxPackets,
		Hooks:                rm.adapterHooks(),
		// The Admin UI's namespace takes no room in the recovery stream.
		RecoveryNamespaces: []string{"/"},
	})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, fmt.Errorf("redis adapter: %w", err)
	}
	m.closer = append(m.closer, adapter.Close)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chatd_cluster_nodes", Help: "chatd instances this instance sees alive, itself included.",
	}, func() float64 { return float64(adapter.Nodes()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chatd_redis_ready", Help: "1 while Redis answers and the adapter is subscribed.",
	}, func() float64 {
		if adapter.Ready() {
			return 1
		}
		return 0
	}))

	membership, err := chatdredis.NewRedisMembership(client, chatdredis.RedisMembershipOptions{Prefix: prefix, Logger: m.log})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	history, err := chatdredis.NewRedisHistory(client, chatdredis.RedisHistoryOptions{Prefix: prefix, Logger: m.log, Size: cfg.History.Size, TTL: cfg.History.TTL})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	idem, err := chatdredis.NewRedisIdempotency(client, chatdredis.RedisIdempotencyOptions{Prefix: prefix, Logger: m.log, TTL: idempotencyTTL})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	// A message's keys share its room's slot: its membership check,
	// clientMsgId record and append are one script.
	hist, err := chatdredis.NewRedisMemberHistory(history, membership, idem)
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	presence, err := chatdredis.NewRedisPresence(client, chatdredis.RedisPresenceOptions{
		Prefix: prefix, Logger: m.log, InstanceID: cfg.Instance.ID, TTL: cfg.Presence.TTL, Timeout: cfg.Redis.Timeout,
	})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	grants, err := chatdredis.NewRedisGrants(client, chatdredis.RedisGrantsOptions{Prefix: prefix, Logger: m.log})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	cutoffs, err := chatdredis.NewRedisCutoffs(client, chatdredis.RedisGrantsOptions{Prefix: prefix, Logger: m.log, CutoffTTL: cfg.Recovery.MaxDisconnection})
	if err != nil {
		return rooms.Stores{}, server.Deps{}, err
	}
	m.redisPresence = presence
	var adminSessions server.AdminSessions
	if cfg.Admin.Enabled() {
		if adminSessions, err = chatdredis.NewRedisAdminSessions(client, prefix); err != nil {
			return rooms.Stores{}, server.Deps{}, err
		}
	}
	if err := presence.Start(ctx); err != nil {
		// Redis may be down at start; presence keeps retrying by itself.
		m.log.Warn("presence start", "err", err)
	}
	m.closer = append(m.closer, func() error {
		cctx, cancel := context.WithTimeout(context.Background(), cfg.Redis.Timeout)
		defer cancel()
		return presence.Close(cctx)
	})
	return rooms.Stores{
			Membership:  membership,
			Presence:    presence,
			History:     hist,
			Idempotency: idem,
		}, server.Deps{
			Adapter:       adapter,
			Ready:         func() bool { return adapter.Ready() && !m.layoutPending.Load() },
			Grants:        grants,
			Cutoffs:       cutoffs,
			AdminSessions: adminSessions,
		}, nil
}

// checkLayout refuses Redis keys of a layout the stores do not read (see
// chatdredis.CheckLayout), with an error that names redis.prefix. A Redis
// that does not answer yet is no reason not to start: the instance then
// stays unready until a later check (with the presence reaps) passes.
func (m *Main) checkLayout(ctx context.Context, client redis.UniversalClient) error {
	err := chatdredis.CheckLayout(ctx, client, m.cfg.Redis.Prefix)
	if err == nil {
		return nil
	}
	if refused := m.layoutRefused(err); refused != nil {
		return refused
	}
	m.log.Warn("the Redis key layout is not checked yet; this instance is not ready until it is", "err", err)
	m.layoutPending.Store(true)
	return nil
}

// layoutRefused returns err as a refusal naming redis.prefix when it says
// the keys are of another layout, and nil when Redis did not answer.
func (m *Main) layoutRefused(err error) error {
	var old *chatdredis.OldLayoutError
	if errors.As(err, &old) || errors.Is(err, chatdredis.ErrUnknownLayout) {
		return fmt.Errorf("redis.prefix %q: %w", m.cfg.Redis.Prefix, err)
	}
	return nil
}

// recheckLayout runs the layout check that Redis did not answer at start.
// Old keys found now keep the instance unready, with an error in the log
// at each check: it must not serve on them.
func (m *Main) recheckLayout(ctx context.Context) {
	if !m.layoutPending.Load() {
		return
	}
	err := chatdredis.CheckLayout(ctx, m.redisClient, m.cfg.Redis.Prefix)
	if err == nil {
		m.layoutPending.Store(false)
		m.log.Info("the Redis key layout is checked; this instance can be ready")
		return
	}
	if refused := m.layoutRefused(err); refused != nil {
		m.log.Error("this instance stays unready: " + refused.Error())
		return
	}
	m.log.Debug("the Redis key layout is not checked yet", "err", err)
}

// redisClientConfig is the Redis client that the redis.* settings of cfg
// describe, for chatd and for chatd migrate-keys alike.
func redisClientConfig(cfg *config.Config) chatdredis.ClientConfig {
	return chatdredis.ClientConfig{
		URL:        cfg.Redis.URL,
		Addrs:      cfg.Redis.Addrs,
		MasterName: cfg.Redis.MasterName,
		Username:   cfg.Redis.Username,
		Password:   cfg.Redis.Password,
		Timeout:    cfg.Redis.Timeout,
	}
}
