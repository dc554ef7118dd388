package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigJSONSaysWhenDevModeIsOpenToOthers(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"dev on loopback", Config{AuthMode: AuthDev}, `"devInsecure":false`},
		{"dev off loopback", Config{AuthMode: AuthDev, DevInsecure: true}, `"devInsecure":true`},
		{"jwt", Config{AuthMode: AuthJWT, JWTSecret: []byte(strings.Repeat("s", 32)), DevInsecure: true}, `"devInsecure":false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newRoutesServer(t, tt.cfg, nil)
			if _, body := get(t, ts.URL+"/chatd/config.json"); !strings.Contains(body, tt.want) {
				t.Fatalf("config.json = %s, want %s", body, tt.want)
			}
		})
	}
}

func TestSocketIDsAreNotRooms(t *testing.T) {
	_, ts := apiTestServer(t, APIConfig{Token: apiToken})
	alice := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	bob := apiDial(t, ts, map[string]any{"userId": "bob"}, nil)
	bob.join("general")
	ack := bob.try("join", map[string]any{"room": alice.id})
	if errCode(ack) != "bad_request" {
		t.Fatalf("join of another socket's id = %v, want bad_request", ack)
	}
	r := apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(map[string]any{"event": "x", "data": 1, "sockets": []string{"general"}}))
	wantError(t, r, http.StatusBadRequest, "bad_request", "not a socket id")
	r = apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(map[string]any{"event": "to-alice", "data": 1, "sockets": []string{alice.id}}))
	if r.status != http.StatusAccepted {
		t.Fatalf("emit to alice's socket: %d %s", r.status, r.raw)
	}
	alice.next("to-alice")
	if r := apiDo(t, ts, http.MethodPost, "/@connections/"+alice.id, apiToken, `{"n":1}`); r.status != http.StatusOK {
		t.Fatalf("@connections post: %d %s", r.status, r.raw)
	}
	alice.next("push")
	if r := apiDo(t, ts, http.MethodPost, "/@connections/general", apiToken, `{"n":1}`); r.status != http.StatusGone {
		t.Fatalf("@connections post to a room name: %d %s, want 410", r.status, r.raw)
	}
	if bob.has("to-alice") || bob.has("push") {
		t.Fatal("bob received what was sent to alice's socket")
	}
}

// try sends a request and returns its acknowledgement, ok or not.
func (c *apiClient) try(event string, payload map[string]any) map[string]any {
	c.t.Helper()
	c.mu.Lock()
	c.nextAck++
	id := c.nextAck
	c.mu.Unlock()
	b, _ := json.Marshal([]any{event, payload})
	c.write("42" + strconv.Itoa(id) + string(b))
	var ack any
	c.waitFor("ack of "+event, func() bool {
		a, ok := c.acks[id]
		ack = a
		return ok
	})
	m, _ := ack.(map[string]any)
	return m
}

// errCode is the error.code of a refused acknowledgement, "" for an ok one.
func errCode(ack map[string]any) string {
	e, _ := ack["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestMayResume(t *testing.T) {
	ts := newRoutesServer(t, Config{AuthMode: AuthJWT, JWTSecret: []byte(strings.Repeat("s", 32)), RecoveryMaxDisconnection: time.Minute}, nil)
	s := serverOf(t, ts)
	now := time.Now()
	if err := s.cutOff(t.Context(), "cut-user"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data any
		want bool
	}{
		{"valid token", map[string]any{dataUserID: "alice", dataExp: now.Add(time.Hour).Unix(), dataAuthAt: now.UnixMilli()}, true},
		{"no exp", map[string]any{dataUserID: "alice", dataAuthAt: now.UnixMilli()}, true},
		{"exp as float (from another instance)", map[string]any{dataUserID: "alice", dataExp: float64(now.Add(time.Hour).Unix())}, true},
		{"expired token", map[string]any{dataUserID: "alice", dataExp: now.Add(-time.Second).Unix(), dataAuthAt: now.UnixMilli()}, false},
		{"disconnected by the API since", map[string]any{dataUserID: "cut-user", dataAuthAt: now.Add(-time.Minute).UnixMilli()}, false},
		{"authenticated after the API disconnect", map[string]any{dataUserID: "cut-user", dataAuthAt: now.Add(time.Minute).UnixMilli()}, true},
		{"no user", map[string]any{}, false},
		{"not socket data", "x", false},
	}
	for _, tt := range tests {
		if got := s.mayResume(tt.data); got != tt.want {
			t.Errorf("%s: mayResume = %v, want %v", tt.name, got, tt.want)
		}
	}
}
