package server

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// sameOriginAllowed hands h the socket.io requests of a page that chatd
// serves itself (an Origin naming the host the request was sent to) without
// their Origin header, so that the library's CORS check, which compares the
// Origin with cors.origins alone, never refuses them: a browser page served
// by chatd, and clients such as python-socketio that always send their own
// origin, keep WebSocket whatever cors.origins holds. A same-origin request
// needs no CORS answer. Cross-origin requests pass unchanged.
//
// chatd has no notion of a trusted proxy, so the comparison is by Host alone
// (host and port; the scheme is not compared, since behind a proxy that ends
// TLS the request chatd sees is plain HTTP).
func sameOriginAllowed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && sameOrigin(origin, r.Host) {
			r = r.Clone(r.Context())
			r.Header.Del("Origin")
		}
		h.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether the origin (scheme://host[:port]) names host, the
// request's Host header. A default port (80 for http, 443 for https), written
// or not, matches the host without one.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(stripDefaultPort(u.Host, u.Scheme), stripDefaultPort(host, u.Scheme))
}

// stripDefaultPort returns hostport without the scheme's default port.
func stripDefaultPort(hostport, scheme string) string {
	h, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport // no port
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return hostport
}
