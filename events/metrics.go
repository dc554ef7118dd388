package events

import "github.com/prometheus/client_golang/prometheus"

// Reasons an event is dropped, the values of chatd_events_dropped_total's
// reason label.
const (
	// DropQueueFull: the queue held hooks.events.queue_max events; its
	// oldest unsent events made room for new ones.
	DropQueueFull = "queue_full"
	// DropExpired: the event was not delivered within hooks.events.retry_for.
	DropExpired = "expired"
	// DropRedis: Redis did not take the event (unreachable for longer than
	// the instance's local buffer or the retry window lasts).
	DropRedis = "redis"
	// DropShutdown: a single instance stopped with the event undelivered.
	DropShutdown = "shutdown"
)

// Reasons a delivery attempt fails, the values of
// chatd_events_failures_total's reason label.
const (
	// FailTimeout: no answer within hooks.events.timeout.
	FailTimeout = "timeout"
	// FailConnect: the backend could not be reached (refused, no route, DNS).
	FailConnect = "connect"
	// FailResponse: the connection broke or the answer was not HTTP.
	FailResponse = "response"
	// FailStatus: the backend answered with a status other than 2xx
	// (redirects are not followed and count here).
	FailStatus = "status"
	// FailQueue: reading or updating the queue (Redis) failed.
	FailQueue = "queue"
)

// Metrics are the events' Prometheus metrics.
type Metrics struct {
	published   *prometheus.CounterVec
	delivered   prometheus.Counter
	failures    *prometheus.CounterVec
	retries     prometheus.Counter
	dropped     *prometheus.CounterVec
	depth       prometheus.Gauge
	postSeconds prometheus.Histogram
}

// NewMetrics registers the events' metrics with reg; nil registers them
// nowhere (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_events_published_total", Help: "Events put in the queue for the backend, by type.",
		}, []string{"type"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_events_delivered_total", Help: "Events the backend acknowledged with a 2xx answer.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_events_failures_total", Help: "Failed event deliveries (POSTs) and queue operations, by reason.",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatd_events_retries_total", Help: "POSTs of an event batch after its first attempt.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_events_dropped_total", Help: "Events given up without delivery, by reason.",
		}, []string{"reason"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatd_events_queue_depth", Help: "Events queued and not yet delivered (in cluster mode, in the shared Redis stream).",
		}),
		postSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chatd_events_post_seconds", Help: "Duration of each POST of an event batch to the backend, in seconds.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
	}
	for _, t := range Types {
		m.published.WithLabelValues(t)
	}
	for _, r := range []string{FailTimeout, FailConnect, FailResponse, FailStatus, FailQueue} {
		m.failures.WithLabelValues(r)
	}
	for _, r := range []string{DropQueueFull, DropExpired, DropRedis, DropShutdown} {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.published, m.delivered, m.failures, m.retries, m.dropped, m.depth, m.postSeconds)
	}
	return m
}

// Dropped counts n events dropped for reason; queues call it.
func (m *Metrics) Dropped(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.dropped.WithLabelValues(reason).Add(float64(n))
}
