package main

import (
	"context"
	"fmt"
	"time"
)

// idleResult is the JSON result of an idle run.
type idleResult struct {
	result
	Connections       int      `json:"connections"`
	Members           int      `json:"members"`
	ConnectSeconds    float64  `json:"connect_s"`
	RSSBeforeMB       *float64 `json:"rss_before_mb,omitempty"`
	RSSAfterMB        *float64 `json:"rss_after_mb,omitempty"`
	RSSPerConnKB      *float64 `json:"rss_per_conn_kb,omitempty"`
	GoroutinesBefore  *int64   `json:"goroutines_before,omitempty"`
	GoroutinesAfter   *int64   `json:"goroutines_after,omitempty"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"`
	Dropped           int      `json:"dropped_connections"`
}

// idle holds o.conns connections, each joined to a room of o.members, and
// measures what they cost the server at rest: RSS and goroutines after
// o.settle, minus what it used before the first connection.
func (r *runner) idle(ctx context.Context) (any, error) {
	cpu := newCPUMeter()
	o := r.o
	res := &idleResult{Connections: o.conns, Members: o.members}
	r.logf("idle: %d connections in rooms of %d over %d instance(s)", o.conns, o.members, len(o.targets))
	before := r.stats.read(ctx)
	start := time.Now()
	clients, err := r.connectAll(ctx, o.conns, nil, nil, func(i int) string {
		return fmt.Sprintf("bench-%s-r%d", r.runID, i/o.members)
	})
	if err != nil {
		res.result = r.head(cpu)
		res.Error = errorText(err)
		return res, err
	}
	defer closeAll(clients)
	res.ConnectSeconds = round(time.Since(start).Seconds(), 2)
	r.logf("settling for %v", o.settle)
	select {
	case <-ctx.Done():
	case <-time.After(o.settle):
	}
	after := r.stats.read(ctx)
	if before.rssKB >= 0 && after.rssKB >= 0 {
		res.RSSBeforeMB = ptr(round(float64(before.rssKB)/1024, 1))
		res.RSSAfterMB = ptr(round(float64(after.rssKB)/1024, 1))
		res.RSSPerConnKB = ptr(round(float64(after.rssKB-before.rssKB)/float64(o.conns), 2))
	}
	if before.goroutines >= 0 && after.goroutines >= 0 {
		res.GoroutinesBefore, res.GoroutinesAfter = ptr(before.goroutines), ptr(after.goroutines)
		res.GoroutinesPerConn = ptr(round(float64(after.goroutines-before.goroutines)/float64(o.conns), 2))
	}
	var derr error
	res.Dropped, derr = dropped(clients)
	res.result = r.head(cpu)
	if res.Dropped > 0 {
		res.Error = fmt.Sprintf("%d connections dropped: %v", res.Dropped, derr)
	} else {
		res.Error = errorText(ctx.Err())
	}
	msg := fmt.Sprintf("idle: %d connections", o.conns)
	if res.RSSPerConnKB != nil {
		msg += fmt.Sprintf(", RSS %.1f -> %.1f MB (%.2f kB per connection)", *res.RSSBeforeMB, *res.RSSAfterMB, *res.RSSPerConnKB)
	}
	if res.GoroutinesPerConn != nil {
		msg += fmt.Sprintf(", goroutines %d -> %d (%.2f per connection)", *res.GoroutinesBefore, *res.GoroutinesAfter, *res.GoroutinesPerConn)
	}
	r.logf("%s", msg)
	if res.Dropped > 0 {
		return res, lostError(res.Dropped, derr)
	}
	return res, ctx.Err()
}
