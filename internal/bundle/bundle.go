// Package bundle serves a browser bundle embedded in the binary (the web
// client, the Admin UI): every file read once at start-up, index.html at
// the prefix itself, a strong ETag on every answer with a request to
// revalidate (so a new binary's files are picked up at once and unchanged
// ones cost a 304), and a Content-Security-Policy on the pages. A binary
// compiled before its bundle was built answers the prefix with 503 and a
// page that says how to build it.
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Config says how one bundle is served.
type Config struct {
	// Prefix is the URL path the files are served below, ending in "/".
	Prefix string
	// Types maps file extensions to their Content-Type; files of other
	// types are not served.
	Types map[string]string
	// CSP is the Content-Security-Policy of HTML answers; its %s is
	// replaced by the ws: and wss: origins of the requested host.
	CSP string
	// NotBuilt is the HTML page answered at Prefix, with 503, when the
	// bundle has no index.html.
	NotBuilt string
}

// Built reports whether fsys holds a built bundle (an index.html).
func Built(fsys fs.FS) bool {
	st, err := fs.Stat(fsys, "index.html")
	return err == nil && !st.IsDir()
}

// asset is one file of the bundle.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the assets of one bundle.
type handler struct {
	cfg    Config
	assets map[string]asset // by path below the prefix: "" (index.html), "index.html", "app.js", ...
	ready  bool             // index.html exists
}

// New serves the files of fsys below cfg.Prefix.
func New(fsys fs.FS, cfg Config) http.Handler {
	h := &handler{cfg: cfg, assets: map[string]asset{}, ready: Built(fsys)}
	_ = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(name), ".") {
			return nil
		}
		ct, ok := cfg.Types[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(body)
		a := asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		h.assets[name] = a
		if name == "index.html" {
			h.assets[""] = a
		}
		return nil
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, h.cfg.Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !h.ready {
		if name != "" && name != "index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprint(w, h.cfg.NotBuilt)
		return
	}
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(a.contentType, "text/html") {
		// The socket.io connection goes back to the host that served the page.
		hd.Set("Content-Security-Policy", fmt.Sprintf(h.cfg.CSP, wsOrigins(r.Host)))
		hd.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// wsOrigins lists the WebSocket origins of host, for browsers whose 'self'
// does not cover ws: and wss:.
func wsOrigins(host string) string {
	if host == "" || strings.ContainsAny(host, " ;,'\"") {
		return ""
	}
	return "ws://" + host + " wss://" + host
}
