package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chatd/internal/httplimit"

	"golang.org/x/time/rate"

	"github.com/chatd/chatd/rooms"
)

// statusError is an error answered with a status of its own (such as 405)
// and extra headers, around the rooms.Error the body shows.
type statusError struct {
	status int
	header http.Header
	err    *rooms.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// httpStatus is the status of an error code.
func httpStatus(code rooms.Code) int {
	switch code {
	case rooms.CodeBadRequest:
		return http.StatusBadRequest
	case rooms.CodeUnauthorized:
		return http.StatusUnauthorized
	case rooms.CodeForbidden:
		return http.StatusForbidden
	case rooms.CodeNotFound:
		return http.StatusNotFound
	case rooms.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case rooms.CodeRateLimited:
		return http.StatusTooManyRequests
	case rooms.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// statusWriter remembers the status written, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// count serves h and counts the request under route and its status.
func (a *Handler) count(route string, w http.ResponseWriter, h func(w http.ResponseWriter)) {
	sw := &statusWriter{ResponseWriter: w}
	h(sw)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	a.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
}

// serveV1 wraps an /api/v1 handler: the API must be on, the bearer token
// right and the rate limit not reached; every error gets the JSON error
// body.
func (a *Handler) serveV1(route string, h v1Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.count(route, w, func(w http.ResponseWriter) {
			if a.cfg.Token == "" {
				a.writeV1Error(w, r, rooms.Errorf(rooms.CodeNotFound, "the server API is off; set CHATD_API_TOKEN (api.token) to turn it on"))
				return
			}
			if a.v1AuthThrottled(w, r) {
				return
			}
			if err := a.checkBearer(r); err != nil {
				a.wrongBearer(r)
				w.Header().Set("WWW-Authenticate", `Bearer realm="chatd"`)
				a.writeV1Error(w, r, err)
				return
			}
			if wait, ok := a.allow("token"); !ok {
				w.Header().Set("Retry-After", httplimit.RetryAfter(wait))
				a.writeV1Error(w, r, rooms.Errorf(rooms.CodeRateLimited, "too many API requests; slow down to %g per second", a.cfg.Rate))
				return
			}
			status, body, err := h(r)
			if err != nil {
				a.writeV1Error(w, r, err)
				return
			}
			if body == nil {
				w.WriteHeader(status)
				return
			}
			writeJSON(w, status, body)
		})
	})
}

// writeV1Error answers err with the JSON error body of /api/v1.
func (a *Handler) writeV1Error(w http.ResponseWriter, r *http.Request, err error) {
	e := rooms.ErrorOf(err)
	status := httpStatus(e.Code)
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
		for k, v := range se.header {
			w.Header()[k] = v
		}
	}
	if status >= 500 {
		a.log.Warn("server API request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err)
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": string(e.Code), "message": e.Message}})
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// checkBearer checks the request's bearer token against the configured one.
func (a *Handler) checkBearer(r *http.Request) error {
	token, ok := bearer(r)
	if !ok {
		return rooms.Errorf(rooms.CodeUnauthorized, "send the API token as \"Authorization: Bearer <token>\"")
	}
	if !secretEqual(token, a.cfg.Token) {
		return rooms.Errorf(rooms.CodeUnauthorized, "the bearer token is not the API token")
	}
	return nil
}

// secretEqual compares two secrets in constant time; hashing first keeps
// the time independent of their lengths too.
func secretEqual(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	h := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], h[:]) == 1 && want != ""
}

// allow takes one request from the budget of a credential (the bearer
// token, or one AWS access key). When the budget is spent it returns how
// long until the next request would be allowed.
func (a *Handler) allow(credential string) (time.Duration, bool) {
	a.mu.Lock()
	lim, ok := a.limiters[credential]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(a.cfg.Rate), a.cfg.Burst)
		a.limiters[credential] = lim
	}
	a.mu.Unlock()
	res := lim.Reserve()
	if !res.OK() {
		return time.Second, false
	}
	if wait := res.Delay(); wait > 0 {
		res.Cancel()
		return wait, false
	}
	return 0, true
}

// readBody reads the request body, at most maxAPIBody bytes; a longer one
// is a too_large error.
func readBody(r *http.Request) ([]byte, error) {
	tooLarge := rooms.Errorf(rooms.CodeTooLarge, "the body is larger than %d bytes", maxAPIBody)
	if r.ContentLength > maxAPIBody {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return nil, &rooms.Error{Code: rooms.CodeBadRequest, Message: "the body could not be read to its end", Err: err}
	}
	if len(b) > maxAPIBody {
		return nil, tooLarge
	}
	return b, nil
}

// jsonObject is a request body's fields, each still in JSON.
type jsonObject map[string]json.RawMessage

// readJSONObject reads a JSON object body whose field names are all among
// allowed.
func readJSONObject(r *http.Request, allowed ...string) (jsonObject, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	example := "{\"" + allowed[0] + "\": ...}"
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "the body must be a JSON object, such as %s", example)
	}
	var obj jsonObject
	if err := json.Unmarshal(b, &obj); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, rooms.Errorf(rooms.CodeBadRequest, "the body is not valid JSON (the error is near byte %d)", syn.Offset)
		case errors.As(err, &typ):
			return nil, rooms.Errorf(rooms.CodeBadRequest, "the body must be a JSON object, such as %s", example)
		}
		return nil, rooms.Errorf(rooms.CodeBadRequest, "the body is not valid JSON")
	}
	if obj == nil {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "the body must be a JSON object, such as %s", example)
	}
	known := make(map[string]bool, len(allowed))
	for _, k := range allowed {
		known[k] = true
	}
	var unknown []string
	for k := range obj {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, rooms.Errorf(rooms.CodeBadRequest, "unknown field %q; the fields are %s", truncate(unknown[0], 64), listWords(allowed))
	}
	return obj, nil
}

// listWords joins words as "a, b and c".
func listWords(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// str returns the string field key; present is false when it is missing or
// null. Any other type is a bad request.
func (o jsonObject) str(key string) (s string, present bool, err error) {
	raw, ok := o[key]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, rooms.Errorf(rooms.CodeBadRequest, "%s must be a string", key)
	}
	return s, true, nil
}

// value returns the field key decoded as any JSON value (null included);
// present is false when it is missing.
func (o jsonObject) value(key string) (v any, present bool, err error) {
	raw, ok := o[key]
	if !ok {
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, false, rooms.Errorf(rooms.CodeBadRequest, "%s is not valid JSON", key)
	}
	return v, true, nil
}

// strList returns the optional list-of-strings field key, nil when missing
// or null.
func (o jsonObject) strList(key string) ([]string, error) {
	raw, ok := o[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var xs []string
	if err := json.Unmarshal(raw, &xs); err != nil {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "%s must be a list of strings, such as [\"a\", \"b\"]", key)
	}
	if len(xs) > maxEmitTargets {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "%s has %d entries; at most %d are allowed", key, len(xs), maxEmitTargets)
	}
	return xs, nil
}

// historyQuery reads ?after=&before=&limit= as the history request reads
// its fields; an empty parameter is the same as a missing one.
func historyQuery(r *http.Request) (rooms.Query, error) {
	var q rooms.Query
	vals := r.URL.Query()
	for k, v := range vals {
		switch k {
		case "after", "before", "limit":
		default:
			return q, rooms.Errorf(rooms.CodeBadRequest, "unknown query parameter %q; the parameters are after, before and limit", truncate(k, 64))
		}
		if len(v) > 1 {
			return q, rooms.Errorf(rooms.CodeBadRequest, "give %s once", k)
		}
	}
	q.After = vals.Get("after")
	q.Before = vals.Get("before")
	if s := vals.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, rooms.Errorf(rooms.CodeBadRequest, "limit must be a whole number from 1 to %d, not %q", rooms.MaxHistoryLimit, truncate(s, 32))
		}
		if n == 0 {
			n = -1 // an explicit 0 is out of range, not "use the default"
		}
		q.Limit = n
	}
	return q, q.Validate()
}

// noQuery refuses query parameters on a route that takes none.
func noQuery(r *http.Request) error {
	for k := range r.URL.Query() {
		return rooms.Errorf(rooms.CodeBadRequest, "unknown query parameter %q; this route takes none", truncate(k, 64))
	}
	return nil
}

// gatewayError is an error of the @connections routes, answered as API
// Gateway answers: a status, the x-amzn-ErrorType header and
// {"message": "..."}.
type gatewayError struct {
	status  int
	errType string
	message string
	err     error // internal cause, logged only
}

func (e *gatewayError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.errType, e.message, e.err)
	}
	return e.errType + ": " + e.message
}

// forbidden is the 403 of a refused @connections request.
func forbidden(format string, args ...any) *gatewayError {
	return &gatewayError{status: http.StatusForbidden, errType: "ForbiddenException", message: fmt.Sprintf(format, args...)}
}

// gone is the 410 of an unknown or gone socket.
func gone(id string) *gatewayError {
	return &gatewayError{status: http.StatusGone, errType: "GoneException", message: fmt.Sprintf("no connected socket %q", truncate(id, 64))}
}

// asGatewayError turns any error into the API Gateway form.
func asGatewayError(err error) *gatewayError {
	var ge *gatewayError
	if errors.As(err, &ge) {
		return ge
	}
	e := rooms.ErrorOf(err)
	out := &gatewayError{message: e.Message, err: e.Err}
	switch e.Code {
	case rooms.CodeBadRequest:
		out.status, out.errType = http.StatusBadRequest, "BadRequestException"
	case rooms.CodeUnauthorized, rooms.CodeForbidden:
		out.status, out.errType = http.StatusForbidden, "ForbiddenException"
	case rooms.CodeNotFound:
		out.status, out.errType = http.StatusGone, "GoneException"
	case rooms.CodeTooLarge:
		out.status, out.errType = http.StatusRequestEntityTooLarge, "PayloadTooLargeException"
	case rooms.CodeRateLimited:
		out.status, out.errType = http.StatusTooManyRequests, "LimitExceededException"
	case rooms.CodeUnavailable:
		out.status, out.errType = http.StatusServiceUnavailable, "ServiceUnavailableException"
	default:
		out.status, out.errType = http.StatusInternalServerError, "InternalServerErrorException"
	}
	return out
}

// writeJSON answers v as JSON with status, not to be cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// truncate cuts s to n bytes for an error message, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
