package hooks

import (
	"net/http"
	"net/url"
	"strings"
)

// AllowedHeaders returns the headers of h that allow names, one value each
// (several joined by ", ") and every value; nil maps when none is there.
func AllowedHeaders(h http.Header, allow []string) (map[string]string, map[string][]string) {
	var one map[string]string
	var all map[string][]string
	for _, name := range allow {
		vals := h.Values(name)
		if len(vals) == 0 {
			continue
		}
		if one == nil {
			one, all = map[string]string{}, map[string][]string{}
		}
		key := http.CanonicalHeaderKey(name)
		one[key] = strings.Join(vals, ", ")
		all[key] = append([]string(nil), vals...)
	}
	return one, all
}

// socketIOParams are the query parameters of socket.io's own handshake,
// which hook requests leave out.
var socketIOParams = map[string]bool{"EIO": true, "transport": true, "sid": true, "t": true, "j": true}

// Query returns q without socket.io's own parameters (EIO, transport, sid,
// t, j): the first value of each and every value; nil maps when none is
// left.
func Query(q url.Values) (map[string]string, map[string][]string) {
	var one map[string]string
	var all map[string][]string
	for k, vals := range q {
		if socketIOParams[k] || len(vals) == 0 {
			continue
		}
		if one == nil {
			one, all = map[string]string{}, map[string][]string{}
		}
		one[k] = vals[0]
		all[k] = append([]string(nil), vals...)
	}
	return one, all
}
