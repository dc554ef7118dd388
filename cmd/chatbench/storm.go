package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// stormStep is one step of a connection storm.
type stormStep struct {
	Rate          float64 `json:"rate"`
	AchievedRate  float64 `json:"achieved_rate"`
	Attempted     int     `json:"attempted"`
	Connected     int64   `json:"connected"`
	Failed        int64   `json:"failed"`
	Connect       latency `json:"connect"`
	Server        usage   `json:"server"`
	FirstError    string  `json:"first_error,omitempty"`
	Pass          bool    `json:"pass"`
	GeneratorSlow bool    `json:"generator_limited,omitempty"`
	// Disturbed marks a step during which other programs used more than
	// disturbedOtherCPU of the machine.
	Disturbed bool `json:"disturbed,omitempty"`
}

// stormResult is the JSON result of a connection storm.
type stormResult struct {
	result
	ConnectP99LimitMS float64     `json:"connect_p99_limit_ms"`
	BestRate          float64     `json:"best_rate"`
	Bounded           string      `json:"bounded_by"`
	Steps             []stormStep `json:"steps"`
}

// storm opens connections at a fixed rate for o.step, holds them until the
// step ends and closes them, then raises the rate by o.factor, until a
// connect fails or the p99 connect time (dial to `session` event) passes
// o.connectP99.
func (r *runner) storm(ctx context.Context) (any, error) {
	cpu := newCPUMeter()
	o := r.o
	res := &stormResult{ConnectP99LimitMS: float64(o.connectP99) / 1e6, Steps: []stormStep{}, Bounded: "max-steps"}
	r.logf("storm: from %.0f connects/s, x%.2f every %v, until p99 connect time passes %v or a connect fails",
		o.rate, o.factor, o.step, o.connectP99)
	next := 0 // user number
	rate := o.rate
	retried := 0
	for i := 0; i < o.maxSteps && ctx.Err() == nil; i++ {
		s := r.stormStep(ctx, rate, &next)
		res.Steps = append(res.Steps, s)
		r.logf("step %d: %.0f connects/s (achieved %.0f): %d connected, %d failed, p50 %.1fms p99 %.1fms max %.1fms: pass %v%s",
			i+1, rate, s.AchievedRate, s.Connected, s.Failed, s.Connect.P50, s.Connect.P99, s.Connect.Max, s.Pass, noise(s.Server))
		if !s.Pass && s.Disturbed && retried < maxRetries {
			retried++
			r.logf("step %d was disturbed by other programs; trying %.0f connects/s again", i+1, rate)
			select {
			case <-ctx.Done():
			case <-time.After(o.cooldown):
			}
			continue
		}
		if !s.Pass {
			res.Bounded = "server"
			if s.GeneratorSlow {
				res.Bounded = "generator"
			}
			break
		}
		res.BestRate = rate
		rate = math.Round(rate * o.factor)
		if rate > o.maxRate {
			res.Bounded = "max-rate"
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.cooldown):
		}
	}
	res.result = r.head(cpu)
	res.Error = errorText(ctx.Err())
	r.logf("storm: %.0f connects/s sustained, bounded by %s", res.BestRate, res.Bounded)
	return res, ctx.Err()
}

func (r *runner) stormStep(ctx context.Context, rate float64, next *int) stormStep {
	o := r.o
	n := min(int(math.Round(rate*o.step.Seconds())), o.maxConns)
	s := stormStep{Rate: rate, Attempted: n}
	var h histogram
	var connected, failed atomic.Int64
	var mu sync.Mutex
	var clients []*client
	var firstErr error
	var wg sync.WaitGroup
	before := r.stats.read(ctx)
	stop := every(time.Second, func() {
		r.logf("rate %.0f/s: %d connected, %d failed", rate, connected.Load(), failed.Load())
	})
	interval := float64(time.Second) / rate
	start := time.Now()
	launched := 0
	for k := 0; k < n && ctx.Err() == nil; k++ {
		if d := time.Duration(float64(k)*interval) - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		target := r.o.targets[*next%len(r.o.targets)]
		user := r.userID(*next)
		*next++
		launched++
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			c, err := dial(ctx, dialOptions{target: target, userID: user, base: r.base, dialer: r.dialer, noWait: !r.o.session})
			if err != nil {
				failed.Add(1)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			h.record(int64(time.Since(t0)))
			connected.Add(1)
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		}()
	}
	launchTime := time.Since(start)
	wg.Wait()
	after := r.stats.read(ctx)
	stop()
	if launchTime > 0 {
		s.AchievedRate = round(float64(launched)/launchTime.Seconds(), 1)
	}
	s.Connected, s.Failed = connected.Load(), failed.Load()
	s.Connect = h.summary()
	s.Server = between(before, after)
	if firstErr != nil {
		s.FirstError = firstErr.Error()
	}
	if n, err := dropped(clients); n > 0 && s.FirstError == "" {
		s.FirstError = fmt.Sprintf("%d connections dropped: %v", n, err)
	}
	s.GeneratorSlow = s.AchievedRate < 0.95*rate
	s.Disturbed = s.Server.OtherCPUPercent != nil && *s.Server.OtherCPUPercent > disturbedOtherCPU
	s.Pass = s.Failed == 0 && s.Connected == int64(n) && s.Connect.P99 <= float64(o.connectP99)/1e6 && !s.GeneratorSlow
	closeAll(clients)
	return s
}
