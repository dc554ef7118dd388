package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/chatd/chatd/internal/signature"
)

// Defaults of [SenderConfig].
const (
	DefaultTimeout   = 5 * time.Second
	DefaultRetryFor  = 10 * time.Minute
	DefaultBatchMax  = 100
	DefaultBatchWait = 100 * time.Millisecond
	// MinBackoff is the wait before the first retry of a batch; each later
	// retry waits twice as long, up to the maximum back-off, with jitter.
	MinBackoff = 500 * time.Millisecond
	// MaxBackoffCap bounds the maximum back-off, which is a twentieth of
	// the retry window but at least a second.
	MaxBackoffCap = 30 * time.Second
	// maxResponseBytes is how much of an answer's body is read (and
	// ignored) so that the connection can be reused.
	maxResponseBytes = 64 << 10
	// depthEvery is how often the queue depth gauge is refreshed.
	depthEvery = time.Second
)

// SenderConfig configures a [Sender]. Zero values get the defaults.
type SenderConfig struct {
	// URL is where the batches are POSTed (hooks.events.url): http or https.
	URL string
	// Secret signs every POST (hooks.secret).
	Secret []byte
	// Timeout bounds one POST, from connecting to the end of the answer's
	// headers.
	Timeout time.Duration
	// RetryFor is how long after it happened an event is still retried;
	// an older one is dropped.
	RetryFor time.Duration
	// BatchMax is the most events in one POST.
	BatchMax int
	// BatchWait is how long the sender gathers events for a batch after
	// the first one is there; 0 sends what is there at once.
	BatchWait time.Duration
	// UserAgent is the User-Agent header, such as "chatd/1.2.0".
	UserAgent string
	// Client sends the POSTs; nil is a client that follows no redirect.
	Client *http.Client
	// Logger receives delivery failures; nil discards them.
	Logger *slog.Logger
}

// Sender takes batches from a [Queue] and POSTs them to the backend, signed,
// retrying each failed batch with exponential back-off and jitter. It sends
// one batch at a time, so that a single instance delivers in the order the
// events were published.
type Sender struct {
	cfg        SenderConfig
	q          Queue
	metrics    *Metrics
	log        *slog.Logger
	client     *http.Client
	maxBackoff time.Duration
	now        func() time.Time
	sleep      func(ctx context.Context, d time.Duration) bool // false when ctx ended first
}

// NewSender returns a Sender from q to cfg.URL. Call Run to start it.
func NewSender(cfg SenderConfig, q Queue, m *Metrics) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("events: URL %q is not an http or https URL", cfg.URL)
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("events: a secret is required to sign the POSTs")
	}
	if q == nil {
		return nil, errors.New("events: a queue is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = DefaultBatchMax
	}
	if cfg.BatchWait < 0 {
		cfg.BatchWait = 0
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "chatd"
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := cfg.Client
	if client == nil {
		client = NewClient()
	}
	return &Sender{
		cfg:        cfg,
		q:          q,
		metrics:    m,
		log:        log,
		client:     client,
		maxBackoff: MaxBackoff(cfg.RetryFor),
		now:        time.Now,
		sleep:      sleepCtx,
	}, nil
}

// MaxBackoff is the longest wait between two attempts for a retry window:
// a twentieth of it, from 1 s to [MaxBackoffCap].
func MaxBackoff(retryFor time.Duration) time.Duration {
	return min(max(retryFor/20, time.Second), MaxBackoffCap)
}

// NewClient returns the HTTP client of a Sender: it follows no redirect
// (a 3xx answer is a failed delivery) and keeps a few connections open.
func NewClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	tr.MaxResponseHeaderBytes = 64 << 10
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run sends batches until ctx ends. A batch in flight when ctx ends stays in
// the queue (in cluster mode another instance, or this one restarted, sends
// it).
func (s *Sender) Run(ctx context.Context) {
	depthCtx, stopDepth := context.WithCancel(ctx)
	defer stopDepth()
	go s.watchDepth(depthCtx)
	queueFailures := 0
	for ctx.Err() == nil {
		evs, err := s.q.Next(ctx, s.cfg.BatchMax, s.cfg.BatchWait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			queueFailures++
			s.metrics.failures.WithLabelValues(FailQueue).Inc()
			if queueFailures == 1 || queueFailures%20 == 0 {
				s.log.Warn("events: reading the queue failed; retrying", "failures", queueFailures, "err", err)
			}
			s.sleep(ctx, s.backoff(queueFailures))
			continue
		}
		queueFailures = 0
		if len(evs) == 0 {
			continue
		}
		s.deliver(ctx, evs)
		s.refreshDepth(ctx)
	}
}

// watchDepth refreshes the queue depth gauge every depthEvery.
func (s *Sender) watchDepth(ctx context.Context) {
	t := time.NewTicker(depthEvery)
	defer t.Stop()
	for {
		s.refreshDepth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sender) refreshDepth(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if n, err := s.q.Depth(ctx); err == nil {
		s.metrics.depth.Set(float64(n))
	}
}

// Flush waits until the queue is empty or ctx ends: a single instance calls
// it on shutdown, before it stops Run.
func (s *Sender) Flush(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if n, err := s.q.Depth(ctx); err == nil && n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deliver POSTs evs until the backend takes them, their retry window ends,
// or ctx ends.
func (s *Sender) deliver(ctx context.Context, evs []Event) {
	var body []byte
	for attempt := 1; ; attempt++ {
		live := s.dropExpired(ctx, evs)
		if len(live) == 0 {
			return
		}
		if body == nil || len(live) != len(evs) {
			b, err := json.Marshal(batch{Events: live})
			if err != nil {
				s.log.Error("events: a batch does not encode", "err", err)
				s.done(ctx, live)
				return
			}
			body = b
		}
		evs = live
		if attempt > 1 {
			s.metrics.retries.Inc()
		}
		err := s.post(ctx, body, attempt)
		if err == nil {
			s.metrics.delivered.Add(float64(len(evs)))
			s.done(ctx, evs)
			return
		}
		if ctx.Err() != nil {
			return
		}
		reason := failureReason(err)
		s.metrics.failures.WithLabelValues(reason).Inc()
		wait := s.backoff(attempt)
		s.log.Warn("events: delivery failed; retrying", "reason", reason, "attempt", attempt,
			"events", len(evs), "retry_in", wait.Round(time.Millisecond), "err", err)
		if !s.sleep(ctx, wait) {
			return
		}
	}
}

// batch is the body of a POST.
type batch struct {
	Events []Event `json:"events"`
}

// dropExpired gives up the events of evs older than the retry window and
// returns the others.
func (s *Sender) dropExpired(ctx context.Context, evs []Event) []Event {
	oldest := s.now().Add(-s.cfg.RetryFor).UnixMilli()
	var live, expired []Event
	for _, e := range evs {
		if e.Time < oldest {
			expired = append(expired, e)
		} else {
			live = append(live, e)
		}
	}
	if len(expired) > 0 {
		s.metrics.Dropped(DropExpired, len(expired))
		s.log.Warn("events: dropped events not delivered within the retry window",
			"events", len(expired), "retry_for", s.cfg.RetryFor)
		s.done(ctx, expired)
	}
	return live
}

// done removes evs from the queue; a failure leaves them to be sent again.
func (s *Sender) done(ctx context.Context, evs []Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	if err := s.q.Done(ctx, evs); err != nil {
		s.metrics.failures.WithLabelValues(FailQueue).Inc()
		s.log.Warn("events: removing delivered events from the queue failed; they may be sent again", "events", len(evs), "err", err)
	}
}

// backoff is the jittered wait after the attempt-th failure: MinBackoff
// doubled per attempt up to the maximum, then a random part of its upper
// half.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.maxBackoff
	if attempt < 20 {
		d = min(d, MinBackoff<<(attempt-1))
	}
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // jitter needs no secure randomness
}

// statusError is an answer other than 2xx.
type statusError struct{ code int }

func (e *statusError) Error() string { return "the backend answered " + strconv.Itoa(e.code) }

// post sends body once.
func (s *Sender) post(ctx context.Context, body []byte, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	req.Header.Set("X-Chatd-Attempt", strconv.Itoa(attempt))
	signature.Sign(req.Header, s.cfg.Secret, s.now(), body)
	start := time.Now()
	res, err := s.client.Do(req)
	if err != nil {
		s.metrics.postSeconds.Observe(time.Since(start).Seconds())
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxResponseBytes))
	_ = res.Body.Close()
	s.metrics.postSeconds.Observe(time.Since(start).Seconds())
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return &statusError{code: res.StatusCode}
	}
	return nil
}

// failureReason names a failed POST for chatd_events_failures_total.
func failureReason(err error) string {
	var se *statusError
	var ne net.Error
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &se):
		return FailStatus
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return FailTimeout
	case errors.As(err, &dns), errors.As(err, &op) && op.Op == "dial":
		return FailConnect
	default:
		return FailResponse
	}
}
