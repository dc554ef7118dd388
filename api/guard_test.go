package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/server"
)

// apiFrom sends one /api/v1 request with the bearer token, as the client
// at addr behind the trusted proxy.
func apiFrom(t *testing.T, ts *httptest.Server, addr, token string) apiResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/rooms/general/messages", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", addr)
	return apiSend(t, req)
}

func TestFailedAPIAuthIsThrottledPerAddress(t *testing.T) {
	_, ts := apiTestServerWith(t, server.Config{MessageBytes: 64, TrustedProxies: []string{"127.0.0.1", "::1"}, Metrics: true}, Config{Token: apiToken})
	const guesser, other = "203.0.113.5", "198.51.100.9"
	for i := range 10 {
		if r := apiFrom(t, ts, guesser, fmt.Sprintf("guess-%d", i)); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s, want 401", i, r.status, r.raw)
		}
	}
	r := apiFrom(t, ts, guesser, "guess-10")
	wantError(t, r, http.StatusTooManyRequests, "rate_limited", "failed authentication")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Even the right token waits: a guesser must not learn that it guessed.
	if r := apiFrom(t, ts, guesser, apiToken); r.status != http.StatusTooManyRequests {
		t.Errorf("right token from the throttled address: %d, want 429", r.status)
	}
	// Others are unaffected.
	if r := apiFrom(t, ts, other, apiToken); r.status != http.StatusOK {
		t.Errorf("right token from another address: %d %s, want 200", r.status, r.raw)
	}
	// Requests without a token guess nothing and are not counted.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/rooms/general/messages", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	for range 20 {
		if r := apiSend(t, req.Clone(req.Context())); r.status != http.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", r.status)
		}
	}
	if got := metricValue(t, ts, `chatd_limit_refusals_total{limit="api_auth_failures"}`); got != "2" {
		t.Errorf("refusals metric = %q, want 2", got)
	}
}

func TestGatewayChecksCredentialsBeforeTheBody(t *testing.T) {
	_, ts := apiTestServerWith(t, server.Config{MessageBytes: 64, Metrics: true}, Config{Token: apiToken})
	for _, auth := range []string{"Bearer wrong-token", "AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/20240101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"} {
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Headers that announce a 1 MiB body, and no body at all: the
		// answer must come without it.
		fmt.Fprintf(conn, "POST /@connections/abc HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", auth, 1<<20)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer before the body: %v", auth[:10], err)
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		res.Body.Close()
		conn.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", auth[:10], res.StatusCode, b)
		}
	}
}

// metricValue reads one series of /metrics as text, "" when absent.
func metricValue(t *testing.T, ts *httptest.Server, series string) string {
	t.Helper()
	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
