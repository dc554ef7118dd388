package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/internal/httplimit"
)

// Refusal reasons, the values of the limit label of chatd_limit_refusals_total.
const (
	refusedAPIAuth = "api_auth_failures"
)

// refusalLimits are every value of the limit label.
var refusalLimits = []string{refusedAPIAuth}

// guard is the server's protection against abusive clients beyond the
// per-socket rate: who a client is behind the trusted proxies, and the
// throttle on failed API authentication.
type guard struct {
	proxies  httplimit.Proxies
	failures *httplimit.Failures
	refused  *prometheus.CounterVec
}

// newGuard builds the guard for cfg, registering its metrics on reg.
func newGuard(cfg Config, reg prometheus.Registerer) (*guard, error) {
	proxies, err := httplimit.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	g := &guard{
		proxies:  proxies,
		failures: httplimit.NewFailures(0, 0),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatd_limit_refusals_total",
			Help: "Clients or requests refused by a limit, by limit (sockets_per_user, connections_per_address, handshakes_per_second, connections, connect_timeout, user_events, api_auth_failures).",
		}, []string{"limit"}),
	}
	for _, l := range refusalLimits {
		g.refused.WithLabelValues(l) // every series exists from the start, at 0
	}
	if reg != nil {
		reg.MustRegister(g.refused)
	}
	return g, nil
}

// clientAddr is the address of the client behind r.
func (g *guard) clientAddr(r *http.Request) string { return g.proxies.ClientAddr(r) }

// authThrottled answers a request from an address that failed API
// authentication too often, before its credentials are looked at, with
// write (which must answer 429 and say when to retry). It reports whether
// it answered.
func (g *guard) authThrottled(w http.ResponseWriter, r *http.Request, write func(w http.ResponseWriter)) bool {
	wait, blocked := g.failures.Blocked(g.clientAddr(r))
	if !blocked {
		return false
	}
	g.refused.WithLabelValues(refusedAPIAuth).Inc()
	w.Header().Set("Retry-After", retryAfter(wait))
	write(w)
	return true
}

// authFailed counts a failed API authentication of r's client address.
func (g *guard) authFailed(r *http.Request) { g.failures.Fail(g.clientAddr(r)) }
