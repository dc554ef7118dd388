package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// response is what a handler answered, read whole.
type response struct {
	StatusCode int
	Header     http.Header
	Body       string
}

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{StatusCode: rec.Code, Header: rec.Header(), Body: rec.Body.String()}
}

func body(t *testing.T, res response) string {
	t.Helper()
	return res.Body
}

func TestNotBuiltSaysHowToBuild(t *testing.T) {
	h := newHandler(fstest.MapFS{".gitkeep": {Data: nil}})
	if built(fstest.MapFS{".gitkeep": {}}) {
		t.Fatal("built() = true for a dist folder with only .gitkeep")
	}
	for _, target := range []string{"/", "/?room=general", "/index.html"} {
		res := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s: status %d, want 503", target, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want text/html", target, ct)
		}
		if b := body(t, res); !strings.Contains(b, BuildCommand) {
			t.Errorf("GET %s: page does not tell how to build the client:\n%s", target, b)
		}
	}
	if res := get(t, h, http.MethodGet, "/app.js", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /app.js without a build: status %d, want 404", res.StatusCode)
	}
}

func builtFS() fstest.MapFS {
	return fstest.MapFS{
		".gitkeep":   {},
		"index.html": {Data: []byte("<!doctype html><title>chatd</title>")},
		"app.js":     {Data: []byte("console.log('chatd')")},
		"app.css":    {Data: []byte("body{margin:0}")},
		"notes.md":   {Data: []byte("# not a client file")},
	}
}

func TestBuiltServesTheClient(t *testing.T) {
	h := newHandler(builtFS())
	tests := []struct {
		target      string
		status      int
		contentType string
		body        string
	}{
		{"/", 200, "text/html; charset=utf-8", "<!doctype html><title>chatd</title>"},
		{"/?room=general", 200, "text/html; charset=utf-8", "<!doctype html><title>chatd</title>"},
		{"/?name=alice&room=general", 200, "text/html; charset=utf-8", "<!doctype html><title>chatd</title>"},
		{"/index.html", 200, "text/html; charset=utf-8", "<!doctype html><title>chatd</title>"},
		{"/app.js", 200, "text/javascript; charset=utf-8", "console.log('chatd')"},
		{"/app.css", 200, "text/css; charset=utf-8", "body{margin:0}"},
		{"/.gitkeep", 404, "", ""},
		{"/notes.md", 404, "", ""},
		{"/nope", 404, "", ""},
		{"/general", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tc.target, nil)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if ct := res.Header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", cc)
			}
			if b := body(t, res); b != tc.body {
				t.Errorf("body %q, want %q", b, tc.body)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("missing X-Content-Type-Options: nosniff")
			}
		})
	}
}

func TestIndexHasContentSecurityPolicy(t *testing.T) {
	h := newHandler(builtFS())
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "chat.example:3000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	csp := rec.Result().Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "connect-src 'self' ws://chat.example:3000 wss://chat.example:3000", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy allows inline code: %q", csp)
	}
}

func TestRevalidationAnswers304(t *testing.T) {
	h := newHandler(builtFS())
	res := get(t, h, http.MethodGet, "/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on /app.js")
	}
	again := get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: status %d, want 304", again.StatusCode)
	}
	other := newHandler(fstest.MapFS{"index.html": {Data: []byte("x")}, "app.js": {Data: []byte("changed")}})
	if changed := get(t, other, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag}); changed.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with an old ETag after a change: status %d, want 200", changed.StatusCode)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	h := newHandler(builtFS())
	if res := get(t, h, http.MethodHead, "/", nil); res.StatusCode != http.StatusOK {
		t.Errorf("HEAD /: status %d, want 200", res.StatusCode)
	}
	res := get(t, h, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
	if allow := res.Header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("POST /: Allow %q, want \"GET, HEAD\"", allow)
	}
}

func TestBuiltMatchesEmbeddedFiles(t *testing.T) {
	// Built reports what this binary holds; both answers are valid, but it
	// must agree with what the handler serves.
	res := get(t, Handler(), http.MethodGet, "/", nil)
	if Built() && res.StatusCode != http.StatusOK {
		t.Errorf("Built() = true but GET / answered %d", res.StatusCode)
	}
	if !Built() && res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Built() = false but GET / answered %d", res.StatusCode)
	}
}
