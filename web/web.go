// Package web serves chatd's browser chat client: the page at "/" and its
// two assets, built from web/src by `npm --prefix web run build` into
// web/dist and embedded into the binary at compile time.
//
// A binary compiled before the bundle was built still starts; its "/" then
// answers 503 with a short page that says how to build the client.
package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/chatd/chatd/internal/bundle"
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

func built(fsys fs.FS) bool { return bundle.Built(fsys) }

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

// csp keeps the page to its own scripts, styles and server even if text ever
// reached the DOM as markup.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' %s; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// newHandler serves the client found in fsys (the contents of web/dist).
func newHandler(fsys fs.FS) http.Handler {
	return bundle.New(fsys, bundle.Config{Prefix: "/", Types: contentTypes, CSP: csp, NotBuilt: notBuiltPage})
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
