package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// runner holds what every scenario shares.
type runner struct {
	o        *options
	progress io.Writer
	base     time.Time // monotonic origin of every timestamp of the run
	runID    string    // makes user ids unique per run
	dialer   *websocket.Dialer
	stats    *serverStats
	redis    *redisMeter // nil without -redis-nodes
}

// result is the head of every JSON result line; scenarios embed it.
type result struct {
	Scenario  string         `json:"scenario"`
	Label     string         `json:"label,omitempty"`
	Time      string         `json:"time"`
	Targets   int            `json:"targets"`
	Go        string         `json:"generator_go"`
	Generator generatorUsage `json:"generator"`
	// RedisNodes is how many Redis servers -redis-nodes named: 1 for one
	// Redis, the masters of a Redis Cluster.
	RedisNodes int    `json:"redis_nodes,omitempty"`
	Error      string `json:"error,omitempty"`
}

func runScenario(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	r := &runner{
		o:        o,
		progress: stderr,
		base:     time.Now(),
		runID:    hex.EncodeToString(id),
		dialer:   newDialer(o.sources),
		stats:    &serverStats{pids: o.pids, metrics: o.metrics, client: &http.Client{Timeout: 5 * time.Second}},
	}
	r.redis = newRedisMeter(o.redisNodes)
	defer r.redis.close()
	if r.redis != nil && !r.redis.read(ctx).ok {
		return fmt.Errorf("-redis-nodes: no INFO from every one of %v", o.redisNodes)
	}
	if len(o.metrics) > 0 && r.stats.read(ctx).goroutines < 0 {
		r.logf("no go_goroutines at %v; goroutines are not reported", o.metrics)
		r.stats.metrics = nil
	}
	var res any
	var err error
	switch o.scenario {
	case "idle":
		res, err = r.idle(ctx)
	case "fanout":
		res, err = r.fanout(ctx)
	case "capacity":
		res, err = r.capacity(ctx)
	case "storm":
		res, err = r.storm(ctx)
	case "soak":
		res, err = r.soak(ctx)
	}
	if res != nil {
		b, jerr := json.Marshal(res)
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return err
}

// head returns the common fields of a result.
func (r *runner) head(cpu cpuMeter) result {
	return result{
		Scenario:   r.o.scenario,
		Label:      r.o.label,
		Time:       time.Now().UTC().Format(time.RFC3339),
		Targets:    len(r.o.targets),
		Go:         runtime.Version(),
		Generator:  cpu.usage(),
		RedisNodes: len(r.o.redisNodes),
	}
}

// logf prints a progress line.
func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "[%6.1fs] %s\n", time.Since(r.base).Seconds(), fmt.Sprintf(format, args...))
}

// every calls fn each interval until the returned stop is called.
func every(interval time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// userID names connection i of this run.
func (r *runner) userID(i int) string { return fmt.Sprintf("bench-%s-%d", r.runID, i) }

// connectAll opens n connections, o.dialConc at a time, spread over the
// targets; each then joins the room roomOf(i) when roomOf is set. state(i)
// is the scenario state of connection i. On error every connection opened
// is closed again.
func (r *runner) connectAll(ctx context.Context, n int, onData frameHandler, state func(i int) any, roomOf func(i int) string) ([]*client, error) {
	clients := make([]*client, n)
	var next, opened, joined atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	stop := every(time.Second, func() {
		r.logf("connecting: %d/%d open, %d joined", opened.Load(), n, joined.Load())
	})
	var wg sync.WaitGroup
	for range min(r.o.dialConc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				var st any
				if state != nil {
					st = state(i)
				}
				c, err := dial(ctx, dialOptions{
					target: r.o.targets[i%len(r.o.targets)],
					userID: r.userID(i),
					base:   r.base,
					dialer: r.dialer,
					onData: onData,
					state:  st,
					noWait: !r.o.session,
				})
				if err != nil {
					fail(fmt.Errorf("connection %d to %s: %w", i, r.o.targets[i%len(r.o.targets)], err))
					return
				}
				c.idx = i
				clients[i] = c
				opened.Add(1)
				if roomOf != nil {
					if _, err := c.request(ctx, "join", map[string]string{"room": roomOf(i)}); err != nil {
						fail(fmt.Errorf("connection %d: %w", i, err))
						return
					}
					joined.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	stop()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeAll(clients)
		return nil, firstErr
	}
	r.logf("connected: %d open, %d joined", opened.Load(), joined.Load())
	return clients, nil
}

// closeAll closes the connections, a few at a time.
func closeAll(clients []*client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			c.close()
			<-sem
		}()
	}
	wg.Wait()
}

// errConnectionsLost fails a run in which the server closed a connection
// (or a connection ended otherwise) before chatbench closed it: a
// benchmark that loses connections has failed, whatever its numbers say.
var errConnectionsLost = errors.New("failed run: connections lost")

// lostError is the error of a run that lost n connections, first for why.
func lostError(n int, first error) error {
	return fmt.Errorf("%w: %d closed before chatbench closed them (first: %v)", errConnectionsLost, n, first)
}

// dropped returns how many connections ended without being closed by
// chatbench, and the first reason.
func dropped(clients []*client) (int, error) {
	n := 0
	var first error
	for _, c := range clients {
		if err := c.lost(); err != nil {
			n++
			if first == nil {
				first = err
			}
		}
	}
	return n, first
}

// errorText is err's text, or "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the run passed -timeout: " + err.Error()
	}
	return err.Error()
}
