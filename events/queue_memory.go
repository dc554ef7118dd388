package events

import (
	"context"
	"sync"
	"time"
)

var _ Queue = (*MemoryQueue)(nil)

// MemoryQueue is the [Queue] of a single instance: a bounded FIFO in memory.
// What it holds is lost when the process stops; Close counts it dropped.
type MemoryQueue struct {
	max     int
	metrics *Metrics
	signal  chan struct{} // has a value when events were added since the last Next looked

	mu       sync.Mutex // guards the following fields
	pending  []Event    // unsent, oldest first
	inflight int        // handed to the sender, not yet Done
	closed   bool
}

// NewMemoryQueue returns a MemoryQueue of at most max events (unsent and in
// flight together); m counts what it drops and may be nil.
func NewMemoryQueue(max int, m *Metrics) *MemoryQueue {
	if max < 1 {
		max = 1
	}
	return &MemoryQueue{max: max, metrics: m, signal: make(chan struct{}, 1)}
}

// Add implements [Queue]. Past the bound it drops the oldest unsent events;
// when every queued event is in flight, the new ones are dropped instead.
func (q *MemoryQueue) Add(evs []Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.metrics.Dropped(DropShutdown, len(evs))
		return
	}
	dropped := 0
	for _, e := range evs {
		if len(q.pending)+q.inflight >= q.max {
			if len(q.pending) == 0 {
				dropped++
				continue
			}
			q.pending[0] = Event{}
			q.pending = q.pending[1:]
			dropped++
		}
		q.pending = append(q.pending, e)
	}
	q.mu.Unlock()
	q.metrics.Dropped(DropQueueFull, dropped)
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// Next implements [Queue].
func (q *MemoryQueue) Next(ctx context.Context, max int, wait time.Duration) ([]Event, error) {
	for q.count() == 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.signal:
		}
	}
	if wait > 0 && q.count() < max {
		t := time.NewTimer(wait)
	gather:
		for q.count() < max {
			select {
			case <-ctx.Done():
				break gather
			case <-t.C:
				break gather
			case <-q.signal:
			}
		}
		t.Stop()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.pending))
	out := make([]Event, n)
	copy(out, q.pending[:n])
	clear(q.pending[:n])
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil // let the backing array go
	}
	q.inflight += n
	return out, nil
}

// count is the number of unsent events.
func (q *MemoryQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Done implements [Queue].
func (q *MemoryQueue) Done(_ context.Context, evs []Event) error {
	q.mu.Lock()
	q.inflight = max(0, q.inflight-len(evs))
	q.mu.Unlock()
	return nil
}

// Depth implements [Queue].
func (q *MemoryQueue) Depth(context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.pending) + q.inflight), nil
}

// Close counts the events still queued as dropped and drops any added
// later. It is idempotent.
func (q *MemoryQueue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	n := len(q.pending) + q.inflight
	q.pending, q.inflight = nil, 0
	q.mu.Unlock()
	q.metrics.Dropped(DropShutdown, n)
}
