// Package adminui serves the socket.io Admin UI (@socket.io/admin-ui) at
// /admin/: the package's own UI bundle with its fonts and icons, copied into
// dist by `npm --prefix web/adminui run build` (build.mjs) and embedded at
// compile time, so that the page loads nothing from another host.
//
// A binary compiled before the bundle was built still starts; /admin/ then
// answers 503 with a page that says how to build it.
package adminui

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/chatd/chatd/internal/bundle"
)

//go:embed all:dist
var dist embed.FS

// BuildCommand builds the UI into web/adminui/dist, run from the repository
// root before `go build`.
const BuildCommand = "npm --prefix web/adminui ci && npm --prefix web/adminui run build"

// Prefix is the URL path the UI is served under.
const Prefix = "/admin/"

// contentTypes maps the extensions of the UI's files to their types; files
// of other types are not served.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// csp keeps the page to its own files and its own server. Vuetify writes
// its theme into a style element, hence 'unsafe-inline' for styles only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self' %s; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Built reports whether the binary holds the built UI.
func Built() bool { return built(distFS()) }

// Handler serves the UI below Prefix: index.html at Prefix itself, its
// files beside it, 404 for anything else. Answers carry a strong ETag and
// ask browsers to revalidate, and the page a Content-Security-Policy that
// allows no other host.
func Handler() http.Handler { return newHandler(distFS()) }

func distFS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path
	}
	return sub
}

func built(fsys fs.FS) bool { return bundle.Built(fsys) }

func newHandler(fsys fs.FS) http.Handler {
	return bundle.New(fsys, bundle.Config{Prefix: Prefix, Types: contentTypes, CSP: csp, NotBuilt: notBuiltPage})
}

const notBuiltPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatd: Admin UI not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1b1e27}
code{background:#f1f2f5;padding:.15rem .35rem;border-radius:4px}</style></head>
<body>
<h1>The Admin UI is not built into this chatd</h1>
<p>The admin namespace (/admin) is on, and any socket.io Admin UI can log in to it, but this
binary was compiled before the UI was built, so there is no page to show.</p>
<p>From the repository root, build the UI and then chatd:</p>
<p><code>` + BuildCommand + `</code><br><code>go build ./cmd/chatd</code></p>
</body>
</html>
`
