package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestHandle mounts routes the way cmd/chatd mounts the server API: a
// pattern with a wildcard first segment is answered ahead of the server's
// own routes, and neither it nor a plain pattern takes socket.io's, the
// health routes' or the web client's paths.
func TestHandle(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("web")) })
	ts := newRoutesServer(t, Config{Web: web}, nil)
	s := serverOf(t, ts)
	s.Handle("/{stage}/@connections/{socketId}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := "staged without its path values"
		if r.PathValue("stage") == "prod" && r.PathValue("socketId") == "abc" {
			body = "staged prod abc"
		}
		_, _ = w.Write([]byte(body))
	}))
	s.Handle("GET /api/v1/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("api")) }))

	tests := []struct {
		path string
		want string // a prefix of the body
	}{
		{"/prod/@connections/abc", "staged prod abc"},
		{"/prod/%40connections/abc", "staged prod abc"},
		{"/api/v1/rooms", "api"},
		{"/healthz", `{"status":"ok"}`},
		{"/socket.io/?EIO=4&transport=polling", "0{"},
		{"/prod/@connections", "web"},
		{"/prod/other/abc", "web"},
		{"/", "web"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			status, body := get(t, ts.URL+tc.path)
			if status != http.StatusOK || !strings.HasPrefix(body, tc.want) {
				t.Fatalf("GET %s: %d %q, want 200 %q...", tc.path, status, body, tc.want)
			}
		})
	}
}
