package bundle

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestServesBelowItsPrefix(t *testing.T) {
	cfg := Config{Prefix: "/ui/", Types: map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript"}, CSP: "connect-src 'self' %s", NotBuilt: "not built"}
	h := New(fstest.MapFS{"index.html": {Data: []byte("<p>hi")}, "app.js": {Data: []byte("x")}, "notes.md": {Data: []byte("#")}, ".hidden.js": {Data: []byte("x")}}, cfg)
	for _, tc := range []struct {
		method, path string
		status       int
		csp          string
	}{
		{"GET", "/ui/", 200, "connect-src 'self' ws://example.test wss://example.test"},
		{"GET", "/ui/index.html", 200, "connect-src 'self' ws://example.test wss://example.test"},
		{"HEAD", "/ui/app.js", 200, ""},
		{"GET", "/ui/notes.md", 404, ""},   // a type it does not serve
		{"GET", "/ui/.hidden.js", 404, ""}, // dot files stay out
		{"GET", "/app.js", 404, ""},        // outside the prefix
		{"POST", "/ui/", 405, ""},
	} {
		req := httptest.NewRequest(tc.method, "http://example.test"+tc.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status || rec.Header().Get("Content-Security-Policy") != tc.csp {
			t.Errorf("%s %s = %d, CSP %q; want %d, %q", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Security-Policy"), tc.status, tc.csp)
		}
		if tc.status == 200 && rec.Header().Get("ETag") == "" {
			t.Errorf("%s %s: no ETag", tc.method, tc.path)
		}
	}
	unbuilt := New(fstest.MapFS{}, cfg)
	rec := httptest.NewRecorder()
	unbuilt.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not built") {
		t.Errorf("unbuilt /ui/ = %d %q, want 503 and the page", rec.Code, rec.Body.String())
	}
	if Built(fstest.MapFS{}) {
		t.Error("Built(empty) = true")
	}
}
