package events

import (
	"encoding/json"
	"log/slog"
	"time"
)

// Sink takes the events chatd publishes. Publish must return at once: the
// server calls it on the chat path, after the change it reports is stored.
type Sink interface {
	// Publish records an event of type typ (one of [Types]) whose payload
	// is data, a value that encodes as a JSON object.
	Publish(typ string, data any)
}

// Discard is the Sink used while events are off.
var Discard Sink = discard{}

type discard struct{}

func (discard) Publish(string, any) {}

// Publisher is the Sink that puts events in a [Queue].
type Publisher struct {
	q       Queue
	types   map[string]bool // nil: every type
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
}

// NewPublisher returns a Publisher into q. types, when not empty, lists the
// only event types published (hooks.events.types); m and log may be nil.
func NewPublisher(q Queue, types []string, m *Metrics, log *slog.Logger) *Publisher {
	p := &Publisher{q: q, metrics: m, log: log, now: time.Now}
	if len(types) > 0 {
		p.types = make(map[string]bool, len(types))
		for _, t := range types {
			p.types[t] = true
		}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

// Publish implements [Sink].
func (p *Publisher) Publish(typ string, data any) {
	if p.types != nil && !p.types[typ] {
		return
	}
	b, err := json.Marshal(data)
	if err != nil {
		// chatd's own payloads always encode; this is a bug, not input.
		p.log.Error("event payload does not encode", "type", typ, "err", err)
		return
	}
	if p.metrics != nil {
		p.metrics.published.WithLabelValues(typ).Inc()
	}
	p.q.Add([]Event{New(typ, p.now(), b)})
}
