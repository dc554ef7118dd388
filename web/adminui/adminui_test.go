package adminui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestNotBuiltSaysHowToBuild(t *testing.T) {
	h := newHandler(fstest.MapFS{".gitkeep": {}})
	for _, target := range []string{"/admin/", "/admin/index.html"} {
		res := serve(h, http.MethodGet, target)
		if res.Code != http.StatusServiceUnavailable || !strings.Contains(res.Body.String(), BuildCommand) {
			t.Errorf("GET %s: %d %q, want 503 saying %q", target, res.Code, res.Body.String(), BuildCommand)
		}
	}
	if res := serve(h, http.MethodGet, "/admin/js/app.js"); res.Code != http.StatusNotFound {
		t.Errorf("GET /admin/js/app.js without a build: %d, want 404", res.Code)
	}
}

func TestBuiltServesTheUI(t *testing.T) {
	h := newHandler(fstest.MapFS{
		"index.html":           {Data: []byte("<!doctype html><title>admin</title>")},
		"js/app.1.js":          {Data: []byte("app()")},
		"fonts/roboto.woff2":   {Data: []byte("wOF2")},
		"LICENSE.admin-ui.txt": {Data: []byte("MIT")},
		"js/app.1.js.map":      {Data: []byte("{}")},
		".gitkeep":             {},
	})
	tests := []struct {
		method, target string
		status         int
		contentType    string
	}{
		{"GET", "/admin/", 200, "text/html; charset=utf-8"},
		{"GET", "/admin/index.html", 200, "text/html; charset=utf-8"},
		{"HEAD", "/admin/", 200, "text/html; charset=utf-8"},
		{"GET", "/admin/js/app.1.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/admin/fonts/roboto.woff2", 200, "font/woff2"},
		{"GET", "/admin/LICENSE.admin-ui.txt", 200, "text/plain; charset=utf-8"},
		{"GET", "/admin/js/app.1.js.map", 404, ""},
		{"GET", "/admin/.gitkeep", 404, ""},
		{"GET", "/admin/nothing", 404, ""},
		{"GET", "/index.html", 404, ""},
		{"POST", "/admin/", 405, ""},
	}
	for _, tt := range tests {
		res := serve(h, tt.method, tt.target)
		if res.Code != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.target, res.Code, tt.status)
			continue
		}
		if tt.contentType != "" && res.Header().Get("Content-Type") != tt.contentType {
			t.Errorf("%s %s: Content-Type %q, want %q", tt.method, tt.target, res.Header().Get("Content-Type"), tt.contentType)
		}
	}
	res := serve(h, http.MethodGet, "/admin/")
	csp := res.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "font-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if res.Header().Get("ETag") == "" || res.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", res.Header())
	}
}

// outsideRef finds a reference to another host in HTML or CSS: an absolute
// or protocol-relative URL in an attribute or in url().
var outsideRef = regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//|url\(\s*["']?\s*(?:[a-z]+:)?//|@import\s+["']?(?:[a-z]+:)?//`)

// TestEmbeddedUIStaysOnItsHost checks the UI built into this binary: its
// page and stylesheets load nothing from another host, and the licenses of
// the copied packages are beside them. It is skipped before the UI is built
// (make test builds it first).
func TestEmbeddedUIStaysOnItsHost(t *testing.T) {
	fsys := distFS()
	if !built(fsys) {
		t.Skip("the Admin UI is not built; run " + BuildCommand)
	}
	checked := 0
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(name, ".html") && !strings.HasSuffix(name, ".css")) {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		checked++
		if m := outsideRef.Find(b); m != nil {
			t.Errorf("%s refers to another host: %q", name, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 4 {
		t.Errorf("checked %d HTML and CSS files, want index.html and at least three stylesheets", checked)
	}
	index, _ := fs.ReadFile(fsys, "index.html")
	for _, want := range []string{`href="fonts/roboto.css"`, `href="mdi/css/materialdesignicons.min.css"`} {
		if !strings.Contains(string(index), want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	for _, lic := range []string{"LICENSE.admin-ui.txt", "LICENSE.mdi-font.txt", "LICENSE.roboto.txt"} {
		if _, err := fs.Stat(fsys, lic); err != nil {
			t.Errorf("%s is missing: %v", lic, err)
		}
	}
	// The outside-host pattern itself finds what it must.
	for _, bad := range []string{`<link href="https://fonts.googleapis.com/css">`, `src:url(//cdn.example/x.woff2)`, `@import "https://x.example/a.css"`} {
		if !outsideRef.MatchString(bad) {
			t.Errorf("the check misses %s", bad)
		}
	}
}
