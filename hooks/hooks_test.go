package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatd/chatd/internal/signature"
	"github.com/chatd/chatd/rooms"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// backend answers every request with answer, after checking its signature.
func backend(t *testing.T, answer func(w http.ResponseWriter, body []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signature.Verify(r.Header, secret, time.Now(), 0, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		answer(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, url string, allow bool) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	caller, err := NewCaller(CallerConfig{Secret: secret}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Endpoint{URL: url, Timeout: 200 * time.Millisecond, AllowOnError: allow}
	c, err := NewClient(Config{Connect: e, Join: e, Message: e, RPC: e}, caller)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func reply(s string) func(http.ResponseWriter, []byte) {
	return func(w http.ResponseWriter, _ []byte) { _, _ = io.WriteString(w, s) }
}

func TestJoinAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(http.ResponseWriter, []byte)
		allow    bool
		wantCode rooms.Code // "" allows
		reason   string     // failure reason counted, "" none
	}{
		{"allowed", reply(`{"result":{}}`), false, "", ""},
		{"refused", reply(`{"error":{"code":"forbidden","message":"not in this room"}}`), false, rooms.CodeForbidden, ""},
		{"unknown code is forbidden", reply(`{"error":{"code":"nope"}}`), false, rooms.CodeForbidden, ""},
		{"garbage refuses", reply(`<html>`), false, rooms.CodeUnavailable, ReasonBadResponse},
		{"garbage allows", reply(`<html>`), true, "", ReasonBadResponse},
		{"neither result nor error", reply(`{}`), false, rooms.CodeUnavailable, ReasonBadResponse},
		{"both", reply(`{"result":{},"error":{"code":"forbidden"}}`), false, rooms.CodeUnavailable, ReasonBadResponse},
		{"500", func(w http.ResponseWriter, _ []byte) { w.WriteHeader(500) }, false, rooms.CodeUnavailable, ReasonStatus},
		{"redirect is not followed", func(w http.ResponseWriter, _ []byte) {
			w.Header().Set("Location", "http://127.0.0.1:1/")
			w.WriteHeader(http.StatusFound)
		}, false, rooms.CodeUnavailable, ReasonStatus},
		{"too large", reply(`{"result":{},"pad":"` + strings.Repeat("x", MaxResponseBytes) + `"}`), false, rooms.CodeUnavailable, ReasonTooLarge},
		{"slow", func(w http.ResponseWriter, _ []byte) {
			time.Sleep(time.Second)
			_, _ = io.WriteString(w, `{"result":{}}`)
		}, false, rooms.CodeUnavailable, ReasonTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := backend(t, tc.answer)
			c, reg := newClient(t, srv.URL, tc.allow)
			err := c.Join(context.Background(), JoinRequest{SocketID: "s", User: User{UserID: "alice", Name: "Alice"}, Room: "general"})
			if got := rooms.ErrorOf(err); tc.wantCode == "" && err != nil || tc.wantCode != "" && (got == nil || got.Code != tc.wantCode) {
				t.Fatalf("Join = %v, want code %q", err, tc.wantCode)
			}
			if tc.reason != "" {
				if n := testutil.ToFloat64(c.caller.failures.WithLabelValues(HookJoin, tc.reason)); n != 1 {
					t.Errorf("failures{reason=%s} = %v, want 1", tc.reason, n)
				}
			}
			if n := testutil.CollectAndCount(reg, "chatd_hook_duration_seconds"); n != 1 {
				t.Errorf("duration series = %d, want 1", n)
			}
		})
	}
}

func TestDownBackend(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := newClient(t, url, false)
	err := c.Join(context.Background(), JoinRequest{Room: "general"})
	if e := rooms.ErrorOf(err); e == nil || e.Code != rooms.CodeUnavailable {
		t.Fatalf("Join with the backend down = %v, want unavailable", err)
	}
	var f *Failure
	if !errors.As(err, &f) || f.Reason != ReasonUnreachable {
		t.Fatalf("cause = %v, want an unreachable Failure", err)
	}
}

func TestConnectResultIsChecked(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		ok           bool
	}{
		{"user and data", `{"result":{"userId":"alice","name":"Alice","data":{"role":"admin"},"allowedRooms":["team-*"]}}`, true},
		{"empty result", `{"result":{}}`, true},
		{"control character in the user id", `{"result":{"userId":"a\u0000b"}}`, false},
		{"user id too long", `{"result":{"userId":"` + strings.Repeat("a", 129) + `"}}`, false},
		{"name too long", `{"result":{"userId":"a","name":"` + strings.Repeat("n", 65) + `"}}`, false},
		{"data not an object", `{"result":{"userId":"a","data":[1]}}`, false},
		{"data too large", `{"result":{"userId":"a","data":{"x":"` + strings.Repeat("d", MaxDataBytes) + `"}}}`, false},
		{"bad pattern", `{"result":{"userId":"a","allowedRooms":["bad room"]}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := backend(t, reply(tc.answer))
			c, _ := newClient(t, srv.URL, false)
			res, err := c.Connect(context.Background(), ConnectRequest{SocketID: "s"})
			if tc.ok != (err == nil) {
				t.Fatalf("Connect = %+v, %v; want ok %v", res, err, tc.ok)
			}
			if tc.ok && res == nil {
				t.Fatal("Connect allowed with no result")
			}
		})
	}
}

func TestRequestShapes(t *testing.T) {
	var got map[string]any
	var hookHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hookHeader = r.Header.Get(HookHeader)
		_ = json.Unmarshal(body, &got)
		_, _ = io.WriteString(w, `{"result":{"text":"[redacted]","data":{"n":1}}}`)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, false)
	res, err := c.Message(context.Background(), MessageRequest{SocketID: "s1", User: User{UserID: "alice", Name: "Alice"}, Room: "general", Text: "hi"})
	if err != nil || res == nil || res.Text == nil || *res.Text != "[redacted]" {
		t.Fatalf("Message = %+v, %v", res, err)
	}
	if got["hook"] != "message" || got["room"] != "general" || got["text"] != "hi" || hookHeader != "message" {
		t.Fatalf("request = %v (X-Chatd-Hook %q)", got, hookHeader)
	}
	if u, _ := got["user"].(map[string]any); u["userId"] != "alice" {
		t.Fatalf("request user = %v", got["user"])
	}
	data, err := c.RPC(context.Background(), RPCRequest{Method: "echo"})
	if err != nil || string(data) != `{"n":1}` {
		t.Fatalf("RPC = %s, %v", data, err)
	}
	if got["hook"] != "rpc" || got["method"] != "echo" || got["data"] != nil {
		t.Fatalf("rpc request = %v", got)
	}
}

func TestRefusalSentenceIsCleaned(t *testing.T) {
	e := refusalError(&Refusal{Code: "rate_limited", Message: "slow\ndown " + strings.Repeat("x", 300)})
	if e.Code != rooms.CodeRateLimited || strings.ContainsAny(e.Message, "\n") || len([]rune(e.Message)) != maxRefusalLength {
		t.Fatalf("refusal = %+v", e)
	}
	if e := refusalError(&Refusal{Code: "internal"}); e.Code != rooms.CodeForbidden || e.Message == "" {
		t.Fatalf("internal refusal = %+v, want forbidden with a sentence", e)
	}
}
