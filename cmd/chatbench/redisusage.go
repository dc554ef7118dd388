package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisMeter reads what the Redis servers behind a cluster of instances
// spent: CPU, commands and network bytes, summed over the servers named by
// -redis-nodes (a single Redis, or the masters of a Redis Cluster). A
// fan-out step reads it before its first send and after its last delivery,
// so the numbers cover that step's messages and not the connects and joins
// before them.
type redisMeter struct {
	clients []*goredis.Client
}

// redisCounters are the totals since a server's start, summed over the
// servers.
type redisCounters struct {
	cpuSeconds float64 // used_cpu_sys + used_cpu_user
	commands   int64   // calls of every command, the meter's own INFO left out
	netBytes   int64   // total_net_input_bytes + total_net_output_bytes
	ok         bool    // every server answered
}

// redisUsage is what the servers spent over a step, in the result line.
type redisUsage struct {
	Nodes              int     `json:"nodes"`
	CPUSeconds         float64 `json:"cpu_s"`
	Commands           int64   `json:"commands"`
	NetBytes           int64   `json:"net_bytes"`
	CPUPerMessageUS    float64 `json:"cpu_us_per_message"`
	CommandsPerMessage float64 `json:"commands_per_message"`
	BytesPerMessage    float64 `json:"bytes_per_message"`
}

// newRedisMeter connects to each address (host:port); nil for none.
func newRedisMeter(addrs []string) *redisMeter {
	if len(addrs) == 0 {
		return nil
	}
	m := &redisMeter{}
	for _, a := range addrs {
		m.clients = append(m.clients, goredis.NewClient(&goredis.Options{Addr: a, DisableIdentity: true, MaxRetries: -1}))
	}
	return m
}

// close closes the meter's connections.
func (m *redisMeter) close() {
	if m == nil {
		return
	}
	for _, c := range m.clients {
		_ = c.Close()
	}
}

// read sums the counters of every server; ok is false when one of them
// did not answer or answered something unexpected.
func (m *redisMeter) read(ctx context.Context) redisCounters {
	if m == nil {
		return redisCounters{}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sum := redisCounters{ok: true}
	for _, c := range m.clients {
		info, err := c.Info(ctx, "cpu", "stats", "commandstats").Result()
		if err != nil {
			return redisCounters{}
		}
		one, err := parseRedisInfo(info)
		if err != nil {
			return redisCounters{}
		}
		sum.cpuSeconds += one.cpuSeconds
		sum.commands += one.commands
		sum.netBytes += one.netBytes
	}
	return sum
}

// usage is what the servers spent between two reads, per message of the
// step's messages; nil when a read failed or no message was sent.
func (m *redisMeter) usage(before, after redisCounters, messages int64) *redisUsage {
	if m == nil || !before.ok || !after.ok || messages <= 0 {
		return nil
	}
	u := &redisUsage{
		Nodes:      len(m.clients),
		CPUSeconds: round(after.cpuSeconds-before.cpuSeconds, 3),
		Commands:   after.commands - before.commands,
		NetBytes:   after.netBytes - before.netBytes,
	}
	n := float64(messages)
	u.CPUPerMessageUS = round((after.cpuSeconds-before.cpuSeconds)*1e6/n, 2)
	u.CommandsPerMessage = round(float64(u.Commands)/n, 2)
	u.BytesPerMessage = round(float64(u.NetBytes)/n, 1)
	return u
}

// parseRedisInfo reads the counters from the answer to INFO cpu stats
// commandstats. The meter's own INFO calls are not counted as commands;
// their bytes are, a few kilobytes per read.
func parseRedisInfo(info string) (redisCounters, error) {
	var c redisCounters
	seen := 0
	for line := range strings.SplitSeq(info, "\n") {
		name, value, found := strings.Cut(strings.TrimSpace(line), ":")
		if !found {
			continue
		}
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return redisCounters{}, fmt.Errorf("INFO %s: %w", name, err)
			}
			c.cpuSeconds += v
			seen++
		case name == "total_net_input_bytes" || name == "total_net_output_bytes":
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return redisCounters{}, fmt.Errorf("INFO %s: %w", name, err)
			}
			c.netBytes += v
			seen++
		case strings.HasPrefix(name, "cmdstat_") && name != "cmdstat_info":
			// cmdstat_get:calls=12,usec=34,...
			calls, _, _ := strings.Cut(value, ",")
			v, err := strconv.ParseInt(strings.TrimPrefix(calls, "calls="), 10, 64)
			if err != nil || !strings.HasPrefix(calls, "calls=") {
				return redisCounters{}, fmt.Errorf("INFO %s: no calls in %q", name, value)
			}
			c.commands += v
		}
	}
	if seen != 4 {
		return redisCounters{}, fmt.Errorf("INFO lacks CPU or network counters (%d of 4)", seen)
	}
	c.ok = true
	return c, nil
}
