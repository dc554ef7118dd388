// Package web serves chatd's browser chat client: the page at "/" and its
// two assets, built from web/src by `npm --prefix web run build` into
// web/dist and embedded into the binary at compile time.
//
// A binary compiled before the bundle was built still starts; its "/" then
// answers 503 with a short page that says how to build the client.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// BuildCommand is the command that builds the client into web/dist, run from
// the repository root before `go build`.
const BuildCommand = "npm --prefix web ci && npm --prefix web run build"

// Built reports whether the binary holds the built client (web/dist had an
// index.html when it was compiled).
func Built() bool {
	return built(distFS())
}

// Handler serves the client: index.html at "/" (whatever the query, so
// links such as "/?room=general" work), app.js and app.css beside it, and 404
// for any other path. Every answer asks browsers to revalidate (no-cache)
// and carries a strong ETag, so a new binary's client is picked up at once
// and an unchanged one costs a 304. Without a built client it answers "/"
// with 503 and a page that says how to build it.
func Handler() http.Handler {
	return newHandler(distFS())
}

func distFS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only for an invalid path; "dist" is valid.
		panic(err)
	}
	return sub
}

func built(fsys fs.FS) bool {
	st, err := fs.Stat(fsys, "index.html")
	return err == nil && !st.IsDir()
}

// asset is one file of the client, read once at start-up.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the assets of one client build.
type handler struct {
	assets map[string]asset // by URL path: "/", "/app.js", ...
	ready  bool             // index.html exists
}

// contentTypes maps the extensions of the client's files to their types;
// files of other types are not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// newHandler serves the client found in fsys (the contents of web/dist).
func newHandler(fsys fs.FS) http.Handler {
	h := &handler{assets: map[string]asset{}, ready: built(fsys)}
	_ = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(name), ".") {
			return nil
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(body)
		a := asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		h.assets["/"+name] = a
		if name == "index.html" {
			h.assets["/"] = a
		}
		return nil
	})
	return h
}

// csp keeps the page to its own scripts, styles and server even if text ever
// reached the DOM as markup.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' %s; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.ready {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprint(w, notBuiltPage)
		return
	}
	a, ok := h.assets[r.URL.Path]
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
		hd.Set("Content-Security-Policy", fmt.Sprintf(csp, wsOrigins(r.Host)))
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

const notBuiltPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatd: web client not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1b1e27}
code{background:#f1f2f5;padding:.15rem .35rem;border-radius:4px}</style></head>
<body>
<h1>The web client is not built into this chatd</h1>
<p>chatd is running: socket.io clients and the API work. This binary was compiled before the
browser client was built, so there is no page to show.</p>
<p>From the repository root, build the client and then chatd:</p>
<p><code>` + BuildCommand + `</code><br><code>go build ./cmd/chatd</code></p>
</body>
</html>
`
