package events

import (
	"context"
	"time"
)

// Queue holds the events between the [Publisher] and the [Sender]. Each
// event is handed to one sender (in cluster mode, of one instance) until
// that sender calls Done; a sender that stops without Done leaves its
// events to be handed out again.
type Queue interface {
	// Add appends evs without waiting on the network or the backend. When
	// the queue is full, its oldest unsent events are dropped (and
	// counted) to make room.
	Add(evs []Event)
	// Next waits until at least one event can be sent, or ctx ends, then
	// gathers up to max events for at most wait longer, and returns them.
	// It may return no event and no error (when a wait for new events
	// lapsed); the sender then calls it again.
	Next(ctx context.Context, max int, wait time.Duration) ([]Event, error)
	// Done removes events that were delivered or given up.
	Done(ctx context.Context, evs []Event) error
	// Depth is the number of events queued, those handed to a sender and
	// not yet Done included.
	Depth(ctx context.Context) (int64, error)
}
