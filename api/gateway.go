package api

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chatd/chatd/internal/httplimit"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/server"
)

// gatewayHandler answers one @connections request for socket id that
// passed authentication and the rate limit; body is the request body, read
// already. It returns a status and a value to encode as JSON (nil for no
// body), or an error, shown through asGatewayError.
type gatewayHandler func(r *http.Request, id string, body []byte) (int, any, error)

// gatewayTimeFormat is how API Gateway writes connectedAt and lastActiveAt.
const gatewayTimeFormat = "2006-01-02T15:04:05.000Z"

// serveGateway wraps the handler of an @connections route the mux serves.
func (a *Handler) serveGateway(route string, h gatewayHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.handleGateway(route, w, r, r.PathValue("socketId"), h)
	})
}

// serveStagedGateway serves the @connections routes below an API Gateway
// stage, /{stage}/@connections/{socketId}: the paths the AWS SDK requests
// when its endpoint is http://chatd:3000/<stage>. A ServeMux pattern with a
// wildcard first segment conflicts with "/socket.io/", so ServeHTTP calls
// this before the mux (and the socket server matches the path ahead of its
// own routes). It reports whether it answered the request.
func (a *Handler) serveStagedGateway(w http.ResponseWriter, r *http.Request) bool {
	id, ok := stagedGatewayPath(r.URL.EscapedPath())
	if !ok {
		return false
	}
	var h gatewayHandler
	switch r.Method {
	case http.MethodPost:
		h = a.gatewayPost
	case http.MethodGet:
		h = a.gatewayGet
	case http.MethodDelete:
		h = a.gatewayDelete
	default:
		a.count("unmatched", w, func(w http.ResponseWriter) {
			w.Header().Set("Allow", "GET, POST, DELETE")
			writeGatewayError(w, &gatewayError{status: http.StatusMethodNotAllowed, errType: "MethodNotAllowedException",
				message: r.Method + " is not served here; use POST, GET or DELETE"})
		})
		return true
	}
	a.handleGateway(r.Method+" /{stage}/@connections/{socketId}", w, r, id, h)
	return true
}

// stagedGatewayPath matches an escaped path of the form
// /{stage}/@connections/{socketId} and returns the (unescaped) socket id.
func stagedGatewayPath(path string) (id string, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 4 || parts[0] != "" || parts[1] == "" || parts[3] == "" {
		return "", false
	}
	if seg, err := url.PathUnescape(parts[2]); err != nil || seg != "@connections" {
		return "", false
	}
	id, err := url.PathUnescape(parts[3])
	if err != nil {
		return "", false
	}
	return id, true
}

// handleGateway answers an @connections request: the routes must be on,
// the request authenticated (bearer token or SigV4) and within the rate
// limit; every error is answered as API Gateway answers it.
func (a *Handler) handleGateway(route string, w http.ResponseWriter, r *http.Request, id string, h gatewayHandler) {
	a.count(route, w, func(w http.ResponseWriter) {
		if a.cfg.Token == "" && a.cfg.AWSAccessKeyID == "" {
			writeGatewayError(w, &gatewayError{status: http.StatusNotFound, errType: "NotFoundException",
				message: "the @connections routes are off; set CHATD_API_TOKEN or CHATD_API_AWS_ACCESS_KEY_ID and CHATD_API_AWS_SECRET_ACCESS_KEY"})
			return
		}
		if a.gatewayAuthThrottled(w, r) {
			return
		}
		if r.Header.Get("Authorization") == "" {
			writeGatewayError(w, forbidden("missing credentials: sign the request with SigV4 or send \"Authorization: Bearer <token>\""))
			return
		}
		if err := a.gatewayPrecheck(r); err != nil {
			a.writeGatewayError(w, r, err)
			return
		}
		body, err := readBody(r)
		if err != nil {
			a.writeGatewayError(w, r, err)
			return
		}
		credential, err := a.gatewayAuth(r, body)
		if err != nil {
			a.wrongSignature(r, err)
			a.writeGatewayError(w, r, err)
			return
		}
		if wait, ok := a.allow(credential); !ok {
			w.Header().Set("Retry-After", httplimit.RetryAfter(wait))
			writeGatewayError(w, &gatewayError{status: http.StatusTooManyRequests, errType: "LimitExceededException",
				message: "too many API requests; slow down"})
			return
		}
		status, out, err := h(r, id, body)
		if err != nil {
			a.writeGatewayError(w, r, err)
			return
		}
		if out == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, out)
	})
}

// gatewayAuth authenticates an @connections request and names the
// credential whose rate limit it spends.
func (a *Handler) gatewayAuth(r *http.Request, body []byte) (string, error) {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, sigV4Algorithm+" "):
		if a.cfg.AWSAccessKeyID == "" {
			return "", forbidden("SigV4 signatures are not accepted: no AWS access key is configured (CHATD_API_AWS_ACCESS_KEY_ID); send \"Authorization: Bearer <token>\"")
		}
		if err := a.verifySigV4(r, body); err != nil {
			return "", err
		}
		return "aws:" + a.cfg.AWSAccessKeyID, nil
	default:
		token, ok := bearer(r)
		if !ok {
			return "", forbidden("the Authorization header must be a SigV4 signature (%s ...) or \"Bearer <token>\"", sigV4Algorithm)
		}
		if a.cfg.Token == "" {
			return "", forbidden("bearer tokens are not accepted: no API token is configured (CHATD_API_TOKEN); sign the request with SigV4")
		}
		if !secretEqual(token, a.cfg.Token) {
			return "", forbidden("the bearer token is not the API token")
		}
		return "token", nil
	}
}

// writeGatewayError answers err as API Gateway would, logging server-side
// failures.
func (a *Handler) writeGatewayError(w http.ResponseWriter, r *http.Request, err error) {
	ge := asGatewayError(err)
	if ge.status >= 500 {
		a.log.Warn("@connections request failed", "method", r.Method, "path", r.URL.Path, "type", ge.errType, "err", err)
	}
	writeGatewayError(w, ge)
}

func writeGatewayError(w http.ResponseWriter, ge *gatewayError) {
	// API Gateway spells the header so; the SDKs read it case-insensitively.
	w.Header()["x-amzn-ErrorType"] = []string{ge.errType}
	writeJSON(w, ge.status, map[string]string{"message": ge.message})
}

// gatewayPost emits the body to the socket as the gateway event: the
// parsed JSON when the body is JSON, else the body as a string.
func (a *Handler) gatewayPost(r *http.Request, id string, body []byte) (int, any, error) {
	sock, err := a.gatewaySocket(r, id)
	if err != nil {
		return 0, nil, err
	}
	var data any = string(body)
	if json.Valid(body) {
		if err := json.Unmarshal(body, &data); err != nil {
			data = string(body)
		}
	}
	if err := a.delivery.Emit([]socket.Room{socket.Room(sock.Id())}, a.cfg.GatewayEvent, data); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nil, nil
}

// gatewayGet describes the socket with API Gateway's GetConnection fields.
// chatd does not track a socket's last activity; lastActiveAt is the time
// it connected.
func (a *Handler) gatewayGet(r *http.Request, id string, _ []byte) (int, any, error) {
	sock, err := a.gatewaySocket(r, id)
	if err != nil {
		return 0, nil, err
	}
	_, at, _ := server.SocketUser(sock)
	connectedAt := time.UnixMilli(at).UTC().Format(gatewayTimeFormat)
	var sourceIP, userAgent string
	if hs := sock.Handshake(); hs != nil {
		sourceIP = hs.Address
		if host, _, err := net.SplitHostPort(hs.Address); err == nil {
			sourceIP = host
		}
		userAgent = hs.Headers.Header().Get("User-Agent")
	}
	return http.StatusOK, map[string]any{
		"connectedAt":  connectedAt,
		"identity":     map[string]string{"sourceIp": sourceIP, "userAgent": userAgent},
		"lastActiveAt": connectedAt,
	}, nil
}

// gatewayDelete disconnects the socket.
func (a *Handler) gatewayDelete(r *http.Request, id string, _ []byte) (int, any, error) {
	sock, err := a.gatewaySocket(r, id)
	if err != nil {
		return 0, nil, err
	}
	if err := a.cutOffSocketUser(r, sock); err != nil {
		return 0, nil, err
	}
	a.delivery.Disconnect(socket.Room(sock.Id()))
	return http.StatusNoContent, nil, nil
}

// gatewaySocket finds a socket for an @connections route; an unknown one
// is gone.
func (a *Handler) gatewaySocket(r *http.Request, id string) (*socket.RemoteSocket, error) {
	if !validSocketID(id) {
		return nil, gone(id)
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	sock, err := a.delivery.FindSocket(ctx, id)
	if err != nil {
		return nil, err
	}
	if sock == nil {
		return nil, gone(id)
	}
	return sock, nil
}
