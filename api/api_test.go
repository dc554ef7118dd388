package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

const apiToken = "test-api-token-0123456789"

// apiResponse is one answer of the server API.
type apiResponse struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// errCode and errMessage read the /api/v1 error body.
func (r apiResponse) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r apiResponse) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// apiDo sends one request with the bearer token (none when token is "").
func apiDo(t *testing.T, ts *httptest.Server, method, path, token, body string) apiResponse {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return apiSend(t, req)
}

func apiSend(t *testing.T, req *http.Request) apiResponse {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := apiResponse{status: res.StatusCode, header: res.Header, raw: string(b)}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &out.body)
	}
	return out
}

// wantError checks an /api/v1 error answer: status, JSON content type,
// code, and a message containing each of the given words.
func wantError(t *testing.T, r apiResponse, status int, code string, words ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if r.errCode() != code {
		t.Errorf("code %q, want %q; body %s", r.errCode(), code, r.raw)
	}
	for _, w := range words {
		if !strings.Contains(r.errMessage(), w) {
			t.Errorf("message %q does not mention %q", r.errMessage(), w)
		}
	}
}

func apiJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// apiCount reads the chatd_api_requests_total series of route and status.
func apiCount(t *testing.T, s *Handler, route string, status int) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.requests.WithLabelValues(route, fmt.Sprint(status)).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestAPIAuthentication(t *testing.T) {
	s, ts := apiTestServer(t, Config{Token: apiToken})
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "Bearer " + apiToken[:10], http.StatusUnauthorized},
		{"basic scheme", "Basic " + apiToken, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"right token", "Bearer " + apiToken, http.StatusOK},
		{"scheme is case-insensitive", "bearer " + apiToken, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/rooms/general/presence", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			r := apiSend(t, req)
			if tc.want == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.raw)
				}
				return
			}
			wantError(t, r, tc.want, "unauthorized", "token")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := apiCount(t, s, "GET /api/v1/rooms/{room}/presence", http.StatusUnauthorized); n != 5 {
		t.Errorf("chatd_api_requests_total{status=401} = %v, want 5", n)
	}
}

func TestAPIOffWithoutToken(t *testing.T) {
	_, ts := apiTestServer(t, Config{})
	r := apiDo(t, ts, http.MethodPost, "/api/v1/emit", "anything", `{"event":"x","data":1,"rooms":["a"]}`)
	wantError(t, r, http.StatusNotFound, "not_found", "CHATD_API_TOKEN")
	for _, path := range []string{"/@connections/abc", "/prod/@connections/abc"} {
		r = apiDo(t, ts, http.MethodGet, path, "anything", "")
		if r.status != http.StatusNotFound || r.body["message"] == nil {
			t.Errorf("GET %s with the API off: %d %s, want 404 with a message", path, r.status, r.raw)
		}
	}
}

func TestAPIUnknownRoutes(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	r := apiDo(t, ts, http.MethodGet, "/api/v1/nothing/here", apiToken, "")
	wantError(t, r, http.StatusNotFound, "not_found", "/api/v1/nothing/here")
	r = apiDo(t, ts, http.MethodPut, "/api/v1/emit", apiToken, "{}")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" || r.errCode() == "" {
		t.Errorf("PUT /api/v1/emit: %d Allow=%q %s, want 405, Allow: POST and the JSON error body", r.status, r.header.Get("Allow"), r.raw)
	}
	r = apiDo(t, ts, http.MethodPatch, "/api/v1/rooms/general/messages", apiToken, "{}")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST, GET" {
		t.Errorf("PATCH messages: %d Allow=%q, want 405 with Allow: POST, GET", r.status, r.header.Get("Allow"))
	}
}

func TestAPIPostMessage(t *testing.T) {
	s, ts := apiTestServer(t, Config{Token: apiToken})
	alice := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	alice.join("general")
	bob := apiDial(t, ts, map[string]any{"userId": "bob"}, nil)

	r := apiDo(t, ts, http.MethodPost, "/api/v1/rooms/general/messages", apiToken, `{"text":"deploy at noon"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	msg, _ := r.body["message"].(map[string]any)
	if msg["userId"] != "system" || msg["name"] != "system" || msg["text"] != "deploy at noon" || msg["room"] != "general" || msg["id"] == "" {
		t.Fatalf("message %v, want text from system in general with an id", msg)
	}
	got, _ := alice.next("message").(map[string]any)
	if got["id"] != msg["id"] || got["text"] != "deploy at noon" {
		t.Fatalf("member received %v, want %v", got, msg)
	}

	// As a named user, idempotent by clientMsgId.
	body := `{"text":"hi","userId":"ops-bot","name":"Ops","clientMsgId":"c-1"}`
	first := apiDo(t, ts, http.MethodPost, "/api/v1/rooms/general/messages", apiToken, body)
	second := apiDo(t, ts, http.MethodPost, "/api/v1/rooms/general/messages", apiToken, body)
	m1, _ := first.body["message"].(map[string]any)
	m2, _ := second.body["message"].(map[string]any)
	if first.status != http.StatusCreated || second.status != http.StatusCreated || m1["id"] != m2["id"] {
		t.Fatalf("retry with the same clientMsgId: %d %v then %d %v, want the same message twice", first.status, m1, second.status, m2)
	}
	if m1["userId"] != "ops-bot" || m1["name"] != "Ops" || m1["clientMsgId"] != "c-1" {
		t.Fatalf("message %v, want ops-bot/Ops/c-1", m1)
	}
	got, _ = alice.next("message").(map[string]any)
	if got["id"] != m1["id"] {
		t.Fatalf("member received %v, want %v", got, m1)
	}
	// A marker behind the retry shows that the retry was not delivered.
	apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(map[string]any{"event": "marker", "data": 1, "sockets": []string{alice.id, bob.id}}))
	alice.next("marker")
	bob.next("marker")
	if alice.has("message") {
		t.Error("a retried send was delivered twice")
	}
	if bob.has("message") {
		t.Error("a non-member received a room message")
	}

	// The name defaults to the user id.
	r = apiDo(t, ts, http.MethodPost, "/api/v1/rooms/general/messages", apiToken, `{"text":"x","userId":"carol"}`)
	if m, _ := r.body["message"].(map[string]any); m["name"] != "carol" {
		t.Errorf("name %v, want the user id", m["name"])
	}
	if n := apiCount(t, s, "POST /api/v1/rooms/{room}/messages", http.StatusCreated); n != 4 {
		t.Errorf("chatd_api_requests_total{status=201} = %v, want 4", n)
	}
}

func TestAPIPostMessageRefusals(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	const path = "/api/v1/rooms/general/messages"
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		code   string
		words  []string
	}{
		{"empty body", path, ``, 400, "bad_request", []string{"JSON object"}},
		{"not JSON", path, `{"text": hi}`, 400, "bad_request", []string{"not valid JSON"}},
		{"array", path, `["hi"]`, 400, "bad_request", []string{"JSON object"}},
		{"null", path, `null`, 400, "bad_request", []string{"JSON object"}},
		{"unknown field", path, `{"text":"hi","txet":"x"}`, 400, "bad_request", []string{`"txet"`, "text"}},
		{"no text", path, `{"userId":"a"}`, 400, "bad_request", []string{"text is required"}},
		{"text not a string", path, `{"text":5}`, 400, "bad_request", []string{"text must be a string"}},
		{"empty text", path, `{"text":""}`, 400, "bad_request", []string{"text must not be empty"}},
		{"text too long", path, apiJSON(map[string]string{"text": strings.Repeat("x", 65)}), 413, "too_large", []string{"64 bytes"}},
		{"empty userId", path, `{"text":"hi","userId":""}`, 400, "bad_request", []string{"userId"}},
		{"userId not a string", path, `{"text":"hi","userId":7}`, 400, "bad_request", []string{"userId must be a string"}},
		{"control character in userId", path, `{"text":"hi","userId":"a\u0001"}`, 400, "bad_request", []string{"control"}},
		{"name too long", path, apiJSON(map[string]string{"text": "hi", "name": strings.Repeat("n", 65)}), 400, "bad_request", []string{"name"}},
		{"empty clientMsgId", path, `{"text":"hi","clientMsgId":""}`, 400, "bad_request", []string{"clientMsgId"}},
		{"reserved room", "/api/v1/rooms/user:bob/messages", `{"text":"hi"}`, 400, "bad_request", []string{"reserved"}},
		{"bad room characters", "/api/v1/rooms/a%20b/messages", `{"text":"hi"}`, 400, "bad_request", []string{"room may only contain"}},
		{"body over 1 MiB", path, `{"text":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "too_large", []string{"1048576"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := apiDo(t, ts, http.MethodPost, tc.path, apiToken, tc.body)
			wantError(t, r, tc.status, tc.code, tc.words...)
		})
	}
	// Nothing of the above was stored.
	r := apiDo(t, ts, http.MethodGet, path, apiToken, "")
	if msgs, _ := r.body["messages"].([]any); r.status != 200 || len(msgs) != 0 {
		t.Errorf("history after refused sends: %d %s, want 200 and no messages", r.status, r.raw)
	}
}

func TestAPIGetMessages(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	var ids []string
	for i := range 5 {
		r := apiDo(t, ts, http.MethodPost, "/api/v1/rooms/general/messages", apiToken, apiJSON(map[string]string{"text": fmt.Sprint("m", i)}))
		m, _ := r.body["message"].(map[string]any)
		id, _ := m["id"].(string)
		ids = append(ids, id)
	}
	texts := func(r apiResponse) string {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		var out []string
		msgs, _ := r.body["messages"].([]any)
		for _, m := range msgs {
			out = append(out, fmt.Sprint(m.(map[string]any)["text"]))
		}
		return strings.Join(out, ",")
	}
	tests := []struct{ query, want string }{
		{"", "m0,m1,m2,m3,m4"},
		{"?limit=2", "m3,m4"},
		{"?after=" + ids[1] + "&limit=2", "m2,m3"},
		{"?before=" + ids[3], "m0,m1,m2"},
		{"?after=&before=&limit=", "m0,m1,m2,m3,m4"},
	}
	for _, tc := range tests {
		if got := texts(apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/messages"+tc.query, apiToken, "")); got != tc.want {
			t.Errorf("GET messages%s = %s, want %s", tc.query, got, tc.want)
		}
	}
	if got := texts(apiDo(t, ts, http.MethodGet, "/api/v1/rooms/empty/messages", apiToken, "")); got != "" {
		t.Errorf("empty room: %q", got)
	}

	refusals := []struct {
		query string
		words []string
	}{
		{"?limit=ten", []string{"limit", "whole number"}},
		{"?limit=0", []string{"limit"}},
		{"?limit=101", []string{"limit must be 1 to 100"}},
		{"?limit=-3", []string{"limit"}},
		{"?before=" + ids[0] + "&after=" + ids[1], []string{"either before or after"}},
		{"?after=yesterday", []string{"after must be a message id"}},
		{"?page=2", []string{`"page"`}},
		{"?limit=1&limit=2", []string{"limit once"}},
	}
	for _, tc := range refusals {
		r := apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/messages"+tc.query, apiToken, "")
		t.Run(tc.query, func(t *testing.T) { wantError(t, r, http.StatusBadRequest, "bad_request", tc.words...) })
	}
	r := apiDo(t, ts, http.MethodGet, "/api/v1/rooms/user:x/messages", apiToken, "")
	wantError(t, r, http.StatusBadRequest, "bad_request", "reserved")
}

func TestAPIPresence(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	alice := apiDial(t, ts, map[string]any{"userId": "alice", "name": "Alice"}, nil)
	alice.join("general")
	apiDial(t, ts, map[string]any{"userId": "bob"}, nil) // online, not a member

	r := apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/presence", apiToken, "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	users, _ := r.body["users"].([]any)
	if len(users) != 1 || users[0].(map[string]any)["userId"] != "alice" || users[0].(map[string]any)["name"] != "Alice" {
		t.Fatalf("users %v, want only alice", users)
	}
	r = apiDo(t, ts, http.MethodGet, "/api/v1/rooms/nobody/presence", apiToken, "")
	if users, ok := r.body["users"].([]any); r.status != 200 || !ok || len(users) != 0 {
		t.Errorf("empty room presence: %d %s, want 200 and users: []", r.status, r.raw)
	}
	wantError(t, apiDo(t, ts, http.MethodGet, "/api/v1/rooms/user:alice/presence", apiToken, ""), 400, "bad_request", "reserved")
	wantError(t, apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/presence?x=1", apiToken, ""), 400, "bad_request", `"x"`)
}

func TestAPIEmit(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	alice := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	alice.join("ops")
	alice2 := apiDial(t, ts, map[string]any{"userId": "alice"}, nil) // alice's second tab
	bob := apiDial(t, ts, map[string]any{"userId": "bob"}, nil)
	carol := apiDial(t, ts, map[string]any{"userId": "carol"}, nil)
	all := []*apiClient{alice, alice2, bob, carol}
	marker := func() {
		t.Helper()
		ids := []string{}
		for _, c := range all {
			ids = append(ids, c.id)
		}
		if r := apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(map[string]any{"event": "marker", "data": nil, "sockets": ids})); r.status != http.StatusAccepted {
			t.Fatalf("marker: %d %s", r.status, r.raw)
		}
		for _, c := range all {
			c.next("marker")
		}
	}
	emit := func(body map[string]any) {
		t.Helper()
		r := apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(body))
		if r.status != http.StatusAccepted || r.body["ok"] != true {
			t.Fatalf("emit %v: %d %s, want 202 {ok: true}", body, r.status, r.raw)
		}
	}
	expect := func(event string, want ...*apiClient) {
		t.Helper()
		marker()
		for _, c := range all {
			n := 0
			for c.has(event) {
				c.next(event)
				n++
			}
			wantN := 0
			for _, w := range want {
				if w == c {
					wantN = 1
				}
			}
			if n != wantN {
				t.Errorf("%s received %q %d times, want %d", c.session["userId"], event, n, wantN)
			}
		}
	}

	emit(map[string]any{"event": "to-room", "data": map[string]any{"n": 1}, "rooms": []string{"ops"}})
	expect("to-room", alice, alice2)
	emit(map[string]any{"event": "to-users", "data": "x", "users": []string{"alice", "carol"}})
	expect("to-users", alice, alice2, carol)
	emit(map[string]any{"event": "to-socket", "data": []int{1, 2}, "sockets": []string{bob.id}})
	expect("to-socket", bob)
	// A socket in several targets receives the event once.
	emit(map[string]any{"event": "overlap", "data": true, "rooms": []string{"ops"}, "users": []string{"alice"}, "sockets": []string{alice.id, bob.id}})
	expect("overlap", alice, alice2, bob)

	emit(map[string]any{"event": "payload", "data": map[string]any{"deep": []any{"a", 1.5, nil}}, "sockets": []string{bob.id}})
	if got := apiJSON(bob.next("payload")); got != `{"deep":["a",1.5,null]}` {
		t.Errorf("payload arrived as %s", got)
	}

	refusals := []struct {
		name  string
		body  string
		words []string
	}{
		{"no event", `{"data":1,"rooms":["ops"]}`, []string{"event is required"}},
		{"event not a string", `{"event":1,"data":1,"rooms":["ops"]}`, []string{"event must be a string"}},
		{"protocol event", `{"event":"message","data":1,"rooms":["ops"]}`, []string{"chat protocol"}},
		{"session event", `{"event":"session","data":1,"rooms":["ops"]}`, []string{"chat protocol"}},
		{"socket.io event", `{"event":"disconnect","data":1,"rooms":["ops"]}`, []string{"socket.io"}},
		{"newListener", `{"event":"newListener","data":1,"rooms":["ops"]}`, []string{"socket.io"}},
		{"no data", `{"event":"x","rooms":["ops"]}`, []string{"data is required"}},
		{"no targets", `{"event":"x","data":1}`, []string{"rooms, users or sockets"}},
		{"empty targets", `{"event":"x","data":1,"rooms":[],"users":[],"sockets":[]}`, []string{"rooms, users or sockets"}},
		{"rooms not a list", `{"event":"x","data":1,"rooms":"ops"}`, []string{"rooms must be a list of strings"}},
		{"bad room", `{"event":"x","data":1,"rooms":["user:bob"]}`, []string{"rooms", "reserved"}},
		{"bad user", `{"event":"x","data":1,"users":[""]}`, []string{"users"}},
		{"bad socket", `{"event":"x","data":1,"sockets":["a b"]}`, []string{"not a socket id"}},
		{"unknown field", `{"event":"x","data":1,"rooms":["ops"],"room":"ops"}`, []string{`"room"`}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, tc.body), 400, "bad_request", tc.words...)
		})
	}
	expect("x") // no refused emit reached anyone
}

func TestAPIConnections(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	before := time.Now().UnixMilli()
	alice := apiDial(t, ts, map[string]any{"userId": "alice", "name": "Alice"}, nil)
	alice.join("ops")
	alice.join("general")
	alice2 := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	bob := apiDial(t, ts, map[string]any{"userId": "bob"}, nil)

	r := apiDo(t, ts, http.MethodGet, "/api/v1/connections/"+alice.id, apiToken, "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if r.body["socketId"] != alice.id || r.body["userId"] != "alice" || r.body["name"] != "Alice" {
		t.Errorf("connection %s, want alice's socket", r.raw)
	}
	if got := apiJSON(r.body["rooms"]); got != `["general","ops"]` {
		t.Errorf("rooms %s, want the chat rooms only", got)
	}
	if at, _ := r.body["connectedAt"].(float64); int64(at) < before || int64(at) > time.Now().UnixMilli() {
		t.Errorf("connectedAt %v is not the connection time in milliseconds", r.body["connectedAt"])
	}

	wantError(t, apiDo(t, ts, http.MethodGet, "/api/v1/connections/AAAAAAAAAAAAAAAAAAAAAAAA", apiToken, ""), 404, "not_found", "AAAAAAAAAAAAAAAAAAAAAAAA")
	wantError(t, apiDo(t, ts, http.MethodGet, "/api/v1/connections/user:alice", apiToken, ""), 404, "not_found")

	if r := apiDo(t, ts, http.MethodDelete, "/api/v1/connections/"+alice2.id, apiToken, ""); r.status != http.StatusNoContent || r.raw != "" {
		t.Fatalf("DELETE connection: %d %q, want 204 and no body", r.status, r.raw)
	}
	alice2.waitGone()
	wantError(t, apiDo(t, ts, http.MethodGet, "/api/v1/connections/"+alice2.id, apiToken, ""), 404, "not_found")
	wantError(t, apiDo(t, ts, http.MethodDelete, "/api/v1/connections/"+alice2.id, apiToken, ""), 404, "not_found")
	if alice.isGone() {
		t.Fatal("disconnecting one socket disconnected the user's other socket")
	}

	alice3 := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	if r := apiDo(t, ts, http.MethodDelete, "/api/v1/users/alice/connections", apiToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE user connections: %d %s", r.status, r.raw)
	}
	alice.waitGone()
	alice3.waitGone()
	if r := apiDo(t, ts, http.MethodGet, "/api/v1/connections/"+bob.id, apiToken, ""); r.status != http.StatusOK || bob.isGone() {
		t.Fatalf("another user's socket was disconnected too: %d", r.status)
	}
	// A user id with a slash travels URL-encoded.
	team := apiDial(t, ts, map[string]any{"userId": "team/dana"}, nil)
	if r := apiDo(t, ts, http.MethodDelete, "/api/v1/users/team%2Fdana/connections", apiToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE connections of team/dana: %d %s", r.status, r.raw)
	}
	team.waitGone()
	if r := apiDo(t, ts, http.MethodDelete, "/api/v1/users/nobody/connections", apiToken, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE connections of a user without sockets: %d, want 204", r.status)
	}
	wantError(t, apiDo(t, ts, http.MethodDelete, "/api/v1/users/a%01b/connections", apiToken, ""), 400, "bad_request", "userId")
}

func TestAPIRateLimit(t *testing.T) {
	s, ts := apiTestServer(t, Config{Token: apiToken, Rate: 0.001, Burst: 2})
	for range 2 {
		if r := apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/presence", apiToken, ""); r.status != http.StatusOK {
			t.Fatalf("within the burst: %d %s", r.status, r.raw)
		}
	}
	r := apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/presence", apiToken, "")
	wantError(t, r, http.StatusTooManyRequests, "rate_limited", "slow down")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q, want a positive number of seconds", ra)
	}
	// The @connections routes spend the same token's budget.
	r = apiDo(t, ts, http.MethodGet, "/@connections/AAAAAAAAAAAAAAAAAAAAAAAA", apiToken, "")
	if r.status != http.StatusTooManyRequests || r.header.Get("x-amzn-ErrorType") != "LimitExceededException" || r.header.Get("Retry-After") == "" {
		t.Errorf("gateway over the limit: %d %v %s, want 429 LimitExceededException with Retry-After", r.status, r.header, r.raw)
	}
	if n := apiCount(t, s, "GET /api/v1/rooms/{room}/presence", http.StatusTooManyRequests); n != 1 {
		t.Errorf("chatd_api_requests_total{status=429} = %v, want 1", n)
	}
}
