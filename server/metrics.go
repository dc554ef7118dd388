package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/internal/wstransport"
	"github.com/chatd/chatd/rooms"
)

// metrics are the server's Prometheus series. Event names are bounded: an
// event chatd does not know is counted as "unknown".
type metrics struct {
	sockets     prometheus.Gauge
	users       prometheus.Gauge
	eventsIn    *prometheus.CounterVec
	eventsOut   *prometheus.CounterVec
	acks        *prometheus.CounterVec
	fanout      prometheus.Histogram
	rateLimited prometheus.Counter
	draining    prometheus.Gauge
	apiRequests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, roomCount func() float64, ws *wstransport.Stats) *metrics {
	m := &metrics{
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatd_sockets", Help: "Connected sockets on this instance.",
		}),
		users: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatd_users", Help: "Distinct users with a connected socket on this instance.",
		}),
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_events_received_total", Help: "Client events received, by event name.",
		}, []string{"event"}),
		eventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_events_emitted_total", Help: "Server events emitted (one per emit call, not per recipient), by event name.",
		}, []string{"event"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_acks_total", Help: "Request acknowledgements, by event and code (ok for success).",
		}, []string{"event", "code"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chatd_message_fanout_sockets",
			Help:    "Sockets on the sending instance that a chat message was delivered to.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_rate_limited_total", Help: "Client events refused with rate_limited.",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatd_draining", Help: "1 while this instance drains before shutting down.",
		}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_api_requests_total", Help: "Server API requests, by route and status code.",
		}, []string{"route", "status"}),
	}
	if reg != nil {
		reg.MustRegister(m.sockets, m.users, m.eventsIn, m.eventsOut, m.acks, m.fanout, m.rateLimited, m.draining, m.apiRequests)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chatd_rooms", Help: "socket.io rooms with a socket on this instance (chat rooms, user rooms and socket rooms).",
		}, roomCount))
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "chatd_volatile_dropped_total",
				Help: "Volatile events (typing) not sent to a WebSocket client because it had unsent data queued.",
			}, func() float64 { return float64(ws.VolatileDropped.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "chatd_slow_clients_disconnected_total",
				Help: "WebSocket clients disconnected because their send buffer (limits.send_buffer_bytes) would have overflowed.",
			}, func() float64 { return float64(ws.SlowConsumers.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "chatd_send_buffered_bytes",
				Help: "Bytes queued for WebSocket clients that the kernel has not taken yet, summed over this instance's clients.",
			}, func() float64 { return float64(ws.Queued.Load()) }),
		)
	}
	return m
}

// knownEvents are the client protocol's request events.
var knownEvents = map[string]bool{
	"join": true, "leave": true, "message": true, "typing": true,
	"history": true, "rooms": true, "presence": true, "sync": true,
}

func eventLabel(ev string) string {
	if knownEvents[ev] {
		return ev
	}
	return "unknown"
}

func codeLabel(err *rooms.Error) string {
	if err == nil {
		return "ok"
	}
	return string(err.Code)
}
