package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/redis/sioadapter"
)

// memoryMetrics counts what the idle memory reducer (package idlemem) gave
// back to the system, and the connection bursts it saw.
type memoryMetrics struct {
	releases prometheus.Counter
	released prometheus.Counter
	bursts   prometheus.Counter
}

func newMemoryMetrics(reg prometheus.Registerer) *memoryMetrics {
	m := &memoryMetrics{
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_idle_memory_releases_total",
			Help: "Times chatd went quiet after a busy spell and gave the heap's free memory back to the system (memory.release_when_idle).",
		}),
		released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_idle_memory_released_bytes_total",
			Help: "Memory given back to the system by those releases, in bytes.",
		}),
	}
	m.bursts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chatd_connection_bursts_total",
		Help: "Times connections arrived so fast that chatd lowered its garbage collector target while they did (memory.burst_gc_percent).",
	})
	reg.MustRegister(m.releases, m.released, m.bursts)
	return m
}

// redisMetrics measures chatd's Redis traffic: command latency and errors
// (a go-redis hook) and the adapter's Pub/Sub messages and requests.
type redisMetrics struct {
	cmdSeconds *prometheus.HistogramVec
	cmdErrors  *prometheus.CounterVec
	published  *prometheus.CounterVec
	received   *prometheus.CounterVec
	pubFailed  *prometheus.CounterVec
	reqSeconds *prometheus.HistogramVec
}

var _ redis.Hook = (*redisMetrics)(nil)

func newRedisMetrics(reg prometheus.Registerer) *redisMetrics {
	m := &redisMetrics{
		cmdSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatd_redis_command_seconds", Help: "Redis command latency, by command (pipelines as 'pipeline').",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
		cmdErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_redis_command_errors_total", Help: "Redis commands that failed, by command.",
		}, []string{"command"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_pubsub_published_total", Help: "Adapter messages published to other instances, by kind.",
		}, []string{"kind"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_pubsub_received_total", Help: "Adapter messages received from other instances, by kind.",
		}, []string{"kind"}),
		pubFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_pubsub_publish_failures_total", Help: "Adapter messages that could not be published, by kind and reason.",
		}, []string{"kind", "reason"}),
		reqSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatd_cluster_request_seconds", Help: "Cluster-wide adapter requests (fetchSockets and the like), by kind and outcome.",
			Buckets: prometheus.ExponentialBuckets(.0005, 3, 10),
		}, []string{"kind", "outcome"}),
	}
	reg.MustRegister(m.cmdSeconds, m.cmdErrors, m.published, m.received, m.pubFailed, m.reqSeconds)
	return m
}

func (m *redisMetrics) adapterHooks() sioadapter.AdapterHooks {
	return sioadapter.AdapterHooks{
		Published:     func(kind string) { m.published.WithLabelValues(kind).Inc() },
		Received:      func(kind string) { m.received.WithLabelValues(kind).Inc() },
		PublishFailed: func(kind, reason string) { m.pubFailed.WithLabelValues(kind, reason).Inc() },
		Request: func(kind string, d time.Duration, err error) {
			outcome := "ok"
			if err != nil {
				outcome = "timeout"
			}
			m.reqSeconds.WithLabelValues(kind, outcome).Observe(d.Seconds())
		},
	}
}

// DialHook implements redis.Hook.
func (m *redisMetrics) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

// ProcessHook implements redis.Hook.
func (m *redisMetrics) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		m.observe(cmd.Name(), start, failed(cmd))
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (m *redisMetrics) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		var ferr error
		for _, c := range cmds {
			if ferr = failed(c); ferr != nil {
				break
			}
		}
		m.observe("pipeline", start, ferr)
		return err
	}
}

// commandLabels bounds the command label to the commands chatd sends.
var commandLabels = map[string]bool{
	"evalsha": true, "eval": true, "xadd": true, "xrange": true, "xrevrange": true, "xinfo": true,
	"sadd": true, "srem": true, "smembers": true, "sismember": true, "scard": true, "publish": true,
	"get": true, "set": true, "getdel": true, "del": true, "hget": true, "hset": true, "hdel": true,
	"hmget": true, "hgetall": true, "zadd": true, "zrangebyscore": true, "zrem": true, "ping": true,
	"subscribe": true, "unsubscribe": true, "psubscribe": true, "pipeline": true, "expire": true,
	"pexpire": true, "script": true, "exists": true, "hincrby": true, "zscore": true,
}

func (m *redisMetrics) observe(name string, start time.Time, err error) {
	if !commandLabels[name] {
		name = "other"
	}
	m.cmdSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	if err != nil {
		m.cmdErrors.WithLabelValues(name).Inc()
	}
}

// failed returns cmd's error unless it is a reply of normal operation:
// redis.Nil, NOSCRIPT (go-redis then sends EVAL), and refusals of the
// optional connection set-up commands (CLIENT SETINFO before Redis 7.2,
// HELLO on Redis 5), so that the error counter only moves on real trouble.
func failed(cmd redis.Cmder) error {
	err := cmd.Err()
	if err == nil || errors.Is(err, redis.Nil) {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		if strings.HasPrefix(rerr.Error(), "NOSCRIPT") {
			return nil
		}
		if n := cmd.Name(); n == "client" || n == "hello" {
			return nil
		}
	}
	return err
}
