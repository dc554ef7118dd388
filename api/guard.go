package api

import (
	"net/http"
	"strings"

	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// AuthGuard throttles failed authentication per client address, as the
// socket server counts client addresses (behind http.trusted_proxies).
// *server.Server implements it.
type AuthGuard interface {
	// AuthThrottled answers, with write, a request from an address that
	// failed too often, and reports whether it did.
	AuthThrottled(w http.ResponseWriter, r *http.Request, write func(w http.ResponseWriter)) bool
	// AuthFailed counts a failed authentication of r's client address.
	AuthFailed(r *http.Request)
}

var _ AuthGuard = (*server.Server)(nil)

// noGuard throttles nothing, for a Handler built without a guard.
type noGuard struct{}

func (noGuard) AuthThrottled(http.ResponseWriter, *http.Request, func(http.ResponseWriter)) bool {
	return false
}
func (noGuard) AuthFailed(*http.Request) {}

// v1AuthThrottled answers an /api/v1 request from an address that failed
// authentication too often with 429 and the JSON error body.
func (a *Handler) v1AuthThrottled(w http.ResponseWriter, r *http.Request) bool {
	return a.guard.AuthThrottled(w, r, func(w http.ResponseWriter) {
		a.writeV1Error(w, r, &statusError{status: http.StatusTooManyRequests,
			err: rooms.Errorf(rooms.CodeRateLimited, "too many failed authentication attempts from your address; wait before trying again")})
	})
}

// gatewayAuthThrottled answers an @connections request from an address
// that failed authentication too often as API Gateway answers a throttled
// request.
func (a *Handler) gatewayAuthThrottled(w http.ResponseWriter, r *http.Request) bool {
	return a.guard.AuthThrottled(w, r, func(w http.ResponseWriter) {
		writeGatewayError(w, &gatewayError{status: http.StatusTooManyRequests, errType: "LimitExceededException",
			message: "too many failed authentication attempts from your address; wait before trying again"})
	})
}

// wrongBearer counts a failed /api/v1 authentication against the client's
// address when it was a guess: a bearer token that is not the API token. A
// request without one guesses nothing and is not counted.
func (a *Handler) wrongBearer(r *http.Request) {
	if _, ok := bearer(r); ok {
		a.guard.AuthFailed(r)
	}
}

// wrongSignature counts a SigV4 request whose signature did not match (a
// guess at the secret access key) against the client's address; refusals
// that guess nothing (a stale date, a malformed scope) are not counted.
func (a *Handler) wrongSignature(r *http.Request, err error) {
	if strings.HasPrefix(asGatewayError(err).message, "the signature does not match") {
		a.guard.AuthFailed(r)
	}
}

// gatewayPrecheck checks what of an @connections request's credentials can
// be checked without its body, so that a request with a wrong token or an
// unknown access key is refused before its body is read: a bearer token
// wholly, a SigV4 signature's access key. The signature itself covers the
// body and is checked after.
// A wrong bearer token or an unknown access key is counted against the
// client's address.
func (a *Handler) gatewayPrecheck(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, sigV4Algorithm+" ") || a.cfg.AWSAccessKeyID == "" {
		_, err := a.gatewayAuth(r, nil)
		if token, ok := bearer(r); err != nil && ok && a.cfg.Token != "" && !secretEqual(token, a.cfg.Token) {
			a.guard.AuthFailed(r)
		}
		return err
	}
	auth, gerr := parseSigV4Authorization(h)
	if gerr != nil {
		return gerr
	}
	if !secretEqual(auth.accessKey, a.cfg.AWSAccessKeyID) {
		a.guard.AuthFailed(r)
		return forbidden("the access key %q is not one chatd knows", truncate(auth.accessKey, 32))
	}
	return nil
}
