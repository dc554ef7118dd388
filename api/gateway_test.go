package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// wantGatewayError checks an @connections error answer as the AWS SDK reads
// it: status, x-amzn-ErrorType and {"message": "..."}.
func wantGatewayError(t *testing.T, r apiResponse, status int, errType string, words ...string) {
	t.Helper()
	if r.status != status || r.header.Get("x-amzn-ErrorType") != errType {
		t.Fatalf("got %d %q %s, want %d %s", r.status, r.header.Get("x-amzn-ErrorType"), r.raw, status, errType)
	}
	msg, _ := r.body["message"].(string)
	if msg == "" {
		t.Errorf("body %s has no message", r.raw)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not mention %q", msg, w)
		}
	}
}

func TestGatewayBearer(t *testing.T) {
	for _, prefix := range []string{"/@connections/", "/prod/@connections/", "/prod/%40connections/"} {
		t.Run(prefix, func(t *testing.T) {
			s, ts := apiTestServer(t, Config{Token: apiToken})
			alice := apiDial(t, ts, map[string]any{"userId": "alice"}, http.Header{"User-Agent": {"chatd-test/1.0"}})
			before := time.Now().Add(-time.Second)

			// POST: JSON arrives parsed, anything else as a string.
			r := apiDo(t, ts, http.MethodPost, prefix+alice.id, apiToken, `{"action":"refresh","n":2}`)
			if r.status != http.StatusOK || r.raw != "" {
				t.Fatalf("POST: %d %q, want 200 and an empty body", r.status, r.raw)
			}
			if got := apiJSON(alice.next("push")); got != `{"action":"refresh","n":2}` {
				t.Errorf("push payload %s", got)
			}
			apiDo(t, ts, http.MethodPost, prefix+alice.id, apiToken, `hello there`)
			if got := alice.next("push"); got != "hello there" {
				t.Errorf("push payload %#v, want the string", got)
			}

			// GET: API Gateway's fields.
			r = apiDo(t, ts, http.MethodGet, prefix+alice.id, apiToken, "")
			if r.status != http.StatusOK {
				t.Fatalf("GET: %d %s", r.status, r.raw)
			}
			connected, err := time.Parse(time.RFC3339Nano, r.body["connectedAt"].(string))
			if err != nil || connected.Before(before) || connected.After(time.Now()) {
				t.Errorf("connectedAt %v (%v), want the connection time in ISO-8601", r.body["connectedAt"], err)
			}
			if r.body["lastActiveAt"] != r.body["connectedAt"] {
				t.Errorf("lastActiveAt %v, want connectedAt", r.body["lastActiveAt"])
			}
			id, _ := r.body["identity"].(map[string]any)
			if id["sourceIp"] != "127.0.0.1" || id["userAgent"] != "chatd-test/1.0" {
				t.Errorf("identity %v, want 127.0.0.1 and the handshake's user agent", id)
			}

			// DELETE disconnects; then the socket is gone.
			if r := apiDo(t, ts, http.MethodDelete, prefix+alice.id, apiToken, ""); r.status != http.StatusNoContent {
				t.Fatalf("DELETE: %d %s", r.status, r.raw)
			}
			alice.waitGone()
			for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
				wantGatewayError(t, apiDo(t, ts, m, prefix+alice.id, apiToken, "x"), http.StatusGone, "GoneException", alice.id)
			}
			wantGatewayError(t, apiDo(t, ts, http.MethodPost, prefix+"not%20an%20id", apiToken, "x"), http.StatusGone, "GoneException")

			// Refusals.
			wantGatewayError(t, apiDo(t, ts, http.MethodPost, prefix+"abc", "", "x"), http.StatusForbidden, "ForbiddenException", "credentials")
			wantGatewayError(t, apiDo(t, ts, http.MethodPost, prefix+"abc", "wrong", "x"), http.StatusForbidden, "ForbiddenException", "bearer token")
			wantGatewayError(t, apiDo(t, ts, http.MethodPost, prefix+"abc", apiToken, strings.Repeat("x", 1<<20+1)), http.StatusRequestEntityTooLarge, "PayloadTooLargeException")
			route := "POST /@connections/{socketId}"
			if prefix != "/@connections/" {
				route = "POST /{stage}/@connections/{socketId}"
			}
			if n := apiCount(t, s, route, http.StatusOK); n != 2 {
				t.Errorf("chatd_api_requests_total{route=%q,status=200} = %v, want 2", route, n)
			}
		})
	}
}

func TestGatewayCustomEvent(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken, GatewayEvent: "server-push"})
	c := apiDial(t, ts, map[string]any{"userId": "u"}, nil)
	if r := apiDo(t, ts, http.MethodPost, "/dev/@connections/"+c.id, apiToken, `[1,2]`); r.status != http.StatusOK {
		t.Fatalf("POST: %d %s", r.status, r.raw)
	}
	if got := apiJSON(c.next("server-push")); got != `[1,2]` {
		t.Errorf("payload %s", got)
	}
}

func TestGatewayPaths(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	// Not gateway paths: the stage matcher leaves them to the mux.
	for _, p := range []string{"/a/b/@connections/x", "//@connections/x", "/prod/@connections/", "/prod/connections/x"} {
		if _, ok := stagedGatewayPath(p); ok {
			t.Errorf("%s matched as a staged @connections path", p)
		}
	}
	r := apiDo(t, ts, http.MethodPut, "/prod/@connections/abc", apiToken, "x")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" || r.body["message"] == nil {
		t.Errorf("PUT: %d %v %s, want 405 with Allow and a message", r.status, r.header, r.raw)
	}
}
