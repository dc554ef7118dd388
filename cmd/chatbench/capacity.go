package main

import (
	"context"
	"time"
)

// capacityResult is the JSON result of a capacity search.
type capacityResult struct {
	result
	Rooms       int     `json:"rooms"`
	Members     int     `json:"members"`
	Connections int     `json:"connections"`
	TextBytes   int     `json:"text_bytes"`
	P99LimitMS  float64 `json:"p99_limit_ms"`
	BestRate    float64 `json:"best_rate"`
	BestDeliv   float64 `json:"best_deliveries_per_s"`
	Bounded     string  `json:"bounded_by"`
	// Redis is the -redis-nodes' usage during the best passing step.
	Redis *redisUsage  `json:"redis,omitempty"`
	Steps []stepResult `json:"steps"`
}

// capacity searches the highest message rate whose p99 latency is at most
// o.p99 with every message acked and delivered exactly once: it doubles the
// rate until a step fails, then bisects between the last passing and the
// first failing rate until they are within o.precision. The connections
// stay up across steps; between steps chatbench waits until deliveries
// stop arriving.
func (r *runner) capacity(ctx context.Context) (any, error) {
	cpu := newCPUMeter()
	o := r.o
	res := &capacityResult{Rooms: o.rooms, Members: o.members, Connections: o.rooms * o.members,
		TextBytes: o.textBytes, P99LimitMS: float64(o.p99) / 1e6, Steps: []stepResult{}}
	r.logf("capacity: %d rooms x %d members over %d instance(s), from %.0f messages/s, p99 at most %v",
		o.rooms, o.members, len(o.targets), o.rate, o.p99)
	f, err := r.newFanout(ctx)
	if err != nil {
		res.result = r.head(cpu)
		res.Error = errorText(err)
		return res, err
	}
	defer closeAll(f.clients)

	lo, hi := 0.0, 0.0 // last passing, first failing (0: none yet)
	rate := o.rate
	res.Bounded = "max-steps"
	retried := 0
	for i := 0; i < o.maxSteps && ctx.Err() == nil; i++ {
		s := f.step(ctx, rate, o.warmup, o.duration)
		pass := s.Lost == 0 && s.AckFailed == 0 && s.Unacked == 0 && s.Duplicates == 0 &&
			s.Unexpected == 0 && s.Dropped == 0 && s.Latency.Valid && s.Latency.P99 <= res.P99LimitMS
		s.GeneratorSlow = s.SentRate < 0.95*rate
		s.Disturbed = disturbed(s)
		s.Pass = &pass
		res.Steps = append(res.Steps, s)
		r.logf("step %d: %.0f messages/s: p99 %.2fms, lost %d, failed %d, unacked %d: pass %v%s",
			i+1, rate, s.Latency.P99, s.Lost, s.AckFailed, s.Unacked, pass, noise(s.Server))
		if s.Dropped > 0 {
			// Never noise to retry: the server closed connections.
			n, first := dropped(f.clients)
			err := lostError(n, first)
			res.Bounded = "dropped connections"
			res.result = r.head(cpu)
			res.Error = err.Error()
			r.logf("capacity: %v", err)
			return res, err
		}
		if !pass && s.Disturbed && retried < maxRetries {
			// Other programs took the CPU or stalled chatbench: the
			// failure says little about the server. Try the rate again.
			retried++
			r.logf("step %d was disturbed (send lag %.0fms); trying %.0f messages/s again", i+1, s.SendLagMaxMS, rate)
			f.quiet(ctx, 30*time.Second)
			continue
		}
		if pass {
			lo = rate
			if rate > res.BestRate {
				res.BestRate, res.BestDeliv, res.Redis = rate, s.DeliveriesPS, s.Redis
			}
			if s.GeneratorSlow {
				res.Bounded = "generator"
				break
			}
		} else {
			hi = rate
		}
		if hi > 0 && lo > 0 && hi <= lo*(1+o.precision) {
			res.Bounded = "precision"
			break
		}
		switch {
		case hi == 0:
			rate = lo * 2
		case lo == 0:
			rate = hi / 2
		default:
			rate = (lo + hi) / 2
		}
		if rate > o.maxRate {
			res.Bounded = "max-rate"
			break
		}
		if rate < 1 {
			res.Bounded = "nothing passed"
			break
		}
		f.quiet(ctx, 30*time.Second)
	}
	res.result = r.head(cpu)
	res.Error = errorText(ctx.Err())
	r.logf("capacity: %.0f messages/s (%.0f deliveries/s), bounded by %s", res.BestRate, res.BestDeliv, res.Bounded)
	return res, ctx.Err()
}

// maxRetries is how many disturbed failing steps a capacity search repeats.
const maxRetries = 3

// Thresholds past which a step counts as disturbed by other programs.
const (
	disturbedOtherCPU = 25.0 // percent of one CPU used by neither the servers nor chatbench
	disturbedSendLag  = 50.0 // ms chatbench's sender fell behind its schedule
)

// disturbed reports whether other programs may have spoiled step s.
func disturbed(s stepResult) bool {
	o := s.Server.OtherCPUPercent
	return (o != nil && *o > disturbedOtherCPU) || s.SendLagMaxMS > disturbedSendLag
}

// quiet waits until no delivery has arrived for a second, at most limit: a
// failing step may leave a backlog that would spoil the next one.
func (f *fanoutRun) quiet(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last := f.delivered.Load()
	lastChange := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		if n := f.delivered.Load(); n != last {
			last, lastChange = n, time.Now()
			continue
		}
		if time.Since(lastChange) >= time.Second {
			return
		}
	}
}
