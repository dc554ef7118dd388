package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/internal/signature"
)

// MaxResponseBytes bounds the body of a backend's answer, in bytes; a
// longer one is a failure (reason too_large).
const MaxResponseBytes = 64 << 10

// HookHeader names the hook a request is for, beside the signature headers.
const HookHeader = "X-Chatd-Hook"

// Outcomes of a hook call, the outcome label of chatd_hook_calls_total.
const (
	OutcomeAllow  = "allow"  // the backend allowed (or answered an rpc)
	OutcomeRefuse = "refuse" // the backend refused (or answered an rpc error)
	OutcomeFail   = "fail"   // no usable answer: see the Reason* values
)

// Reasons of a failed call, the reason label of chatd_hook_failures_total.
const (
	ReasonTimeout     = "timeout"      // no answer within the timeout
	ReasonUnreachable = "unreachable"  // no connection, or it broke
	ReasonStatus      = "status"       // an answer that is not 2xx (redirects included)
	ReasonTooLarge    = "too_large"    // a body over MaxResponseBytes
	ReasonBadResponse = "bad_response" // a body that is not the expected JSON
)

// Failure is a call that got no usable answer. Its text is for the log.
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string { return "hook failed (" + f.Reason + "): " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

func failure(reason string, format string, args ...any) *Failure {
	return &Failure{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// CallerConfig configures a [Caller].
type CallerConfig struct {
	// Secret signs every request; required.
	Secret []byte
	// UserAgent is sent with every request, such as "chatd/1.2.0".
	UserAgent string
}

// Caller posts signed JSON to the backend and counts every call in the
// chatd_hook_* metrics. It is safe for concurrent use.
type Caller struct {
	secret    []byte
	userAgent string
	http      *http.Client
	now       func() time.Time
	log       *slog.Logger
	logLimit  *rate.Limiter
	muted     atomic.Int64 // failures not logged since the last one logged

	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
}

// NewCaller returns a Caller that registers its metrics with reg (nil: a
// private registry) and logs failures to log (nil: discarded), at most a
// few per second.
func NewCaller(cfg CallerConfig, reg prometheus.Registerer, log *slog.Logger) (*Caller, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("hooks: a secret is required to sign requests")
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "chatd"
	}
	tr := &http.Transport{
		// Requests go straight to the configured URL, never through a proxy
		// named by the environment.
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    128,
		MaxConnsPerHost:        512,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
	}
	c := &Caller{
		secret:    append([]byte(nil), cfg.Secret...),
		userAgent: cfg.UserAgent,
		http: &http.Client{
			Transport: tr,
			// A redirect is an answer like any other that is not 2xx: a
			// failure. Following it would send the signed body elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:      time.Now,
		log:      log,
		logLimit: rate.NewLimiter(rate.Every(time.Second), 5),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_hook_calls_total", Help: "Requests to the backend's hooks, by hook and outcome (allow, refuse, fail).",
		}, []string{"hook", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chatd_hook_duration_seconds", Help: "Time from sending a hook request to reading its answer, by hook, in seconds.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"hook"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_hook_failures_total", Help: "Hook requests that got no usable answer, by hook and reason (timeout, unreachable, status, too_large, bad_response).",
		}, []string{"hook", "reason"}),
	}
	for _, col := range []prometheus.Collector{c.calls, c.duration, c.failures} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("hooks: metrics: %w", err)
		}
	}
	return c, nil
}

// Post sends body to url as the request of hook, signed, within timeout,
// and returns the body of a 2xx answer. Its error is a *Failure. Post does
// not count the call's outcome: the caller does that with Record once it
// has read the answer.
func (c *Caller) Post(ctx context.Context, hook, url string, timeout time.Duration, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, failure(ReasonUnreachable, "building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set(HookHeader, hook)
	signature.Sign(req.Header, c.secret, c.now(), body)
	start := time.Now()
	defer func() { c.duration.WithLabelValues(hook).Observe(time.Since(start).Seconds()) }()
	res, err := c.http.Do(req)
	if err != nil {
		return nil, transportFailure(ctx, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, transportFailure(ctx, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, failure(ReasonStatus, "the backend answered %s", res.Status)
	}
	if len(data) > MaxResponseBytes {
		return nil, failure(ReasonTooLarge, "the answer is over %d bytes", MaxResponseBytes)
	}
	return data, nil
}

func transportFailure(ctx context.Context, err error) *Failure {
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &Failure{Reason: ReasonTimeout, Err: err}
	}
	return &Failure{Reason: ReasonUnreachable, Err: err}
}

// Record counts one finished call of hook: a *Failure in err as a failure
// with its reason (and logs it), otherwise outcome.
func (c *Caller) Record(hook, outcome string, err error) {
	var f *Failure
	if errors.As(err, &f) {
		c.calls.WithLabelValues(hook, OutcomeFail).Inc()
		c.failures.WithLabelValues(hook, f.Reason).Inc()
		c.logFailure(hook, f)
		return
	}
	c.calls.WithLabelValues(hook, outcome).Inc()
}

// logFailure logs a failed call at warn, a few per second at most; the
// next line logged says how many were left out.
func (c *Caller) logFailure(hook string, f *Failure) {
	if !c.logLimit.Allow() {
		c.muted.Add(1)
		return
	}
	args := []any{"hook", hook, "reason", f.Reason, "err", f.Err}
	if n := c.muted.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	c.log.Warn("hook request failed", args...)
}
