package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	chatdredis "github.com/chatd/chatd/redis"
)

// redisLoss notices that Redis lost its data (see chatdredis.DataMarker) and
// brings this instance's sockets back into agreement with what is left.
type redisLoss struct {
	marker *chatdredis.DataMarker
	lost   prometheus.Counter
}

// watchRedisData sets up the data marker of this instance on client; a
// Redis that does not answer yet gets the marker at the first check.
func (m *Main) watchRedisData(ctx context.Context, client redis.UniversalClient, reg *prometheus.Registry) error {
	marker, err := chatdredis.NewDataMarker(client, m.cfg.Redis.Prefix, m.cfg.Instance.ID)
	if err != nil {
		return err
	}
	rl := &redisLoss{marker: marker, lost: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chatd_redis_data_lost_total",
		Help: "Times this instance found that Redis had lost its data (its marker key was gone): membership, history, presence and recovery sessions were lost with it.",
	})}
	reg.MustRegister(rl.lost)
	sctx, cancel := context.WithTimeout(ctx, m.cfg.Redis.Timeout)
	defer cancel()
	if err := marker.Start(sctx); err != nil {
		m.log.Warn("redis data marker not written yet; it is written at the first check", "err", err)
	}
	m.redisLoss = rl
	return nil
}

// checkRedisData checks the data marker; on a loss it logs an error,
// counts it, and takes the sockets out of the rooms whose membership is
// gone. cmd/chatd calls it with each presence reap.
func (m *Main) checkRedisData(ctx context.Context) {
	if m.redisLoss == nil {
		return
	}
	m.recheckLayout(ctx)
	lost, err := m.redisLoss.marker.Check(ctx)
	if err != nil {
		m.log.Debug("redis data marker not checked", "err", err)
	}
	if !lost {
		return
	}
	m.redisLoss.lost.Inc()
	m.log.Error("Redis lost its data (the marker key " + m.redisLoss.marker.Key() + " is gone): memberships, history and recovery sessions are gone; " +
		"run Redis with persistence (appendonly yes) and maxmemory-policy noeviction. Sockets are being taken out of the rooms they are no longer members of.")
	n := m.srv.ReconcileMembership(ctx)
	m.log.Error("sockets reconciled with the membership left in Redis", "rooms_left", n)
}
