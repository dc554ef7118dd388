package server

import (
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
