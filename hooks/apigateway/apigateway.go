// Package apigateway is chatd's API Gateway compatibility mode: it posts
// each socket's life as the events an API Gateway WebSocket API hands its
// Lambda integration ($connect, $disconnect, $default), in the Lambda proxy
// event's JSON, and reads the answer as the handler's return value
// ({statusCode, body}). A handler written for API Gateway answers them
// unchanged, and its PostToConnection calls reach chatd's @connections
// routes at https://{domainName}/{stage}.
package apigateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/chatd/chatd/hooks"
	"github.com/chatd/chatd/rooms"
)

// Route keys, the routeKey of the events; the hook label of the metrics is
// the matching Hook* name.
const (
	RouteConnect    = "$connect"
	RouteDisconnect = "$disconnect"
	RouteDefault    = "$default"
)

// Hook names of the events in the chatd_hook_* metrics and X-Chatd-Hook.
const (
	HookConnect    = "apigateway_connect"
	HookDisconnect = "apigateway_disconnect"
	HookDefault    = "apigateway_default"
)

// APIID is requestContext.apiId of every event.
const APIID = "chatd"

// Config configures a [Client].
type Config struct {
	// URL receives the events.
	URL string
	// DomainName and Stage are requestContext.domainName and .stage.
	DomainName, Stage string
	// Timeout bounds one request.
	Timeout time.Duration
	// Headers are the handshake headers $connect carries; no other header
	// is forwarded.
	Headers []string
}

// Client posts the events through a hooks.Caller.
type Client struct {
	cfg    Config
	caller *hooks.Caller
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex     // guards closing, and wg.Add against wg.Wait
	closing bool           // Close was called
	wg      sync.WaitGroup // $disconnect posts in flight
}

// New returns a Client.
func New(cfg Config, caller *hooks.Caller, log *slog.Logger) (*Client, error) {
	if caller == nil {
		return nil, errors.New("apigateway: a hooks.Caller is required")
	}
	if cfg.URL == "" || cfg.DomainName == "" || cfg.Stage == "" {
		return nil, errors.New("apigateway: URL, DomainName and Stage are required")
	}
	if cfg.Timeout <= 0 {
		return nil, errors.New("apigateway: Timeout must be above 0")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, caller: caller, log: log, now: time.Now}, nil
}

// Conn is the socket an event is about.
type Conn struct {
	// ID is the socket id, the event's connectionId.
	ID string
	// ConnectedAt is when the socket connected.
	ConnectedAt time.Time
	// SourceIP is the client's address; UserAgent its User-Agent header.
	SourceIP, UserAgent string
	// Headers and Query are the handshake's (only $connect carries them).
	Headers http.Header
	Query   url.Values
}

// Identity is requestContext.identity.
type Identity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// RequestContext is the event's requestContext, with the fields API
// Gateway sets for WebSocket routes.
type RequestContext struct {
	RouteKey             string   `json:"routeKey"`
	EventType            string   `json:"eventType"`
	MessageID            string   `json:"messageId,omitempty"`
	ExtendedRequestID    string   `json:"extendedRequestId"`
	RequestTime          string   `json:"requestTime"`
	MessageDirection     string   `json:"messageDirection"`
	Stage                string   `json:"stage"`
	ConnectedAt          int64    `json:"connectedAt"`
	RequestTimeEpoch     int64    `json:"requestTimeEpoch"`
	Identity             Identity `json:"identity"`
	RequestID            string   `json:"requestId"`
	DomainName           string   `json:"domainName"`
	ConnectionID         string   `json:"connectionId"`
	APIID                string   `json:"apiId"`
	DisconnectStatusCode *int     `json:"disconnectStatusCode,omitempty"`
	DisconnectReason     string   `json:"disconnectReason,omitempty"`
	// EventName is the socket.io event name of a $default event; API
	// Gateway has no such field (a WebSocket frame has no name).
	EventName string `json:"eventName,omitempty"`
}

// Event is the Lambda proxy event of a WebSocket route.
type Event struct {
	Headers                         map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders,omitempty"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters,omitempty"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters,omitempty"`
	RequestContext                  RequestContext      `json:"requestContext"`
	Body                            *string             `json:"body,omitempty"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
}

// Reply is the handler's return value.
type Reply struct {
	StatusCode int
	// Body is the handler's body: its string, or the JSON text of any other
	// value; "" without one.
	Body string
}

// OK reports whether the status code is 2xx.
func (r Reply) OK() bool { return r.StatusCode >= 200 && r.StatusCode <= 299 }

// requestTimeFormat is how API Gateway writes requestTime.
const requestTimeFormat = "02/Jan/2006:15:04:05 -0700"

func (c *Client) context(route, eventType string, conn Conn) RequestContext {
	now := c.now().UTC()
	return RequestContext{
		RouteKey:          route,
		EventType:         eventType,
		ExtendedRequestID: randomID(),
		RequestTime:       now.Format(requestTimeFormat),
		MessageDirection:  "IN",
		Stage:             c.cfg.Stage,
		ConnectedAt:       conn.ConnectedAt.UnixMilli(),
		RequestTimeEpoch:  now.UnixMilli(),
		Identity:          Identity{SourceIP: conn.SourceIP, UserAgent: conn.UserAgent},
		RequestID:         randomID(),
		DomainName:        c.cfg.DomainName,
		ConnectionID:      conn.ID,
		APIID:             APIID,
	}
}

// randomID is a request or message id: 12 random bytes, base64url.
func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// post sends ev and decodes the handler's answer; the error is a
// *hooks.Failure, counted already.
func (c *Client) post(ctx context.Context, hook string, ev *Event) (Reply, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return Reply{}, fmt.Errorf("apigateway: encoding the event: %w", err)
	}
	data, err := c.caller.Post(ctx, hook, c.cfg.URL, c.cfg.Timeout, body)
	if err == nil {
		var r Reply
		r, err = decodeReply(data)
		if err == nil {
			outcome := hooks.OutcomeAllow
			if !r.OK() {
				outcome = hooks.OutcomeRefuse
			}
			c.caller.Record(hook, outcome, nil)
			return r, nil
		}
	}
	c.caller.Record(hook, hooks.OutcomeFail, err)
	return Reply{}, err
}

// decodeReply reads a handler's return value: an object with a whole
// statusCode from 100 to 599 and an optional body.
func decodeReply(data []byte) (Reply, error) {
	var raw struct {
		StatusCode json.RawMessage `json:"statusCode"`
		Body       json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Reply{}, &hooks.Failure{Reason: hooks.ReasonBadResponse, Err: fmt.Errorf("the handler's answer is not a JSON object: %w", err)}
	}
	if len(raw.StatusCode) == 0 || string(raw.StatusCode) == "null" {
		return Reply{}, &hooks.Failure{Reason: hooks.ReasonBadResponse, Err: errors.New("the handler's answer has no statusCode")}
	}
	n, err := strconv.Atoi(string(raw.StatusCode))
	if err != nil || n < 100 || n > 599 {
		return Reply{}, &hooks.Failure{Reason: hooks.ReasonBadResponse, Err: fmt.Errorf("statusCode %.16s is not an HTTP status", raw.StatusCode)}
	}
	r := Reply{StatusCode: n}
	if len(raw.Body) > 0 && string(raw.Body) != "null" {
		var s string
		if json.Unmarshal(raw.Body, &s) == nil {
			r.Body = s
		} else {
			r.Body = string(raw.Body)
		}
	}
	return r, nil
}

// Connect posts $connect for a socket that is connecting. A 2xx answer
// lets it in (nil); anything else refuses it with a *rooms.Error:
// unauthorized for a handler's refusal, unavailable when the handler
// failed.
func (c *Client) Connect(ctx context.Context, conn Conn) error {
	ev := &Event{RequestContext: c.context(RouteConnect, "CONNECT", conn)}
	ev.Headers, ev.MultiValueHeaders = c.headers(conn.Headers)
	ev.QueryStringParameters, ev.MultiValueQueryStringParameters = query(conn.Query)
	r, err := c.post(ctx, HookConnect, ev)
	if err != nil {
		return &rooms.Error{Code: rooms.CodeUnavailable, Message: "the application's $connect handler did not answer; try again shortly", Err: err}
	}
	if !r.OK() {
		return rooms.Errorf(rooms.CodeUnauthorized, "the application refused the connection (statusCode %d)", r.StatusCode)
	}
	return nil
}

// Disconnect posts $disconnect for a socket that is gone, in the
// background; Close waits for the posts in flight. code is the
// disconnectStatusCode, reason the disconnectReason.
func (c *Client) Disconnect(conn Conn, code int, reason string) {
	ev := &Event{RequestContext: c.context(RouteDisconnect, "DISCONNECT", conn)}
	ev.RequestContext.DisconnectStatusCode = &code
	ev.RequestContext.DisconnectReason = reason
	c.mu.Lock()
	if c.closing {
		// Close is waiting already (the last sockets of a shutdown): post
		// without holding it up; the post's own timeout bounds it.
		c.mu.Unlock()
		go func() { _, _ = c.post(context.Background(), HookDisconnect, ev) }()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		_, _ = c.post(context.Background(), HookDisconnect, ev)
	}()
}

// Default posts $default for a client event that is not one of chatd's
// own: body is the event's first argument as text. A failed handler is a
// *rooms.Error with unavailable.
func (c *Client) Default(ctx context.Context, conn Conn, event, body string) (Reply, error) {
	ev := &Event{RequestContext: c.context(RouteDefault, "MESSAGE", conn), Body: &body}
	ev.RequestContext.MessageID = randomID()
	ev.RequestContext.EventName = event
	r, err := c.post(ctx, HookDefault, ev)
	if err != nil {
		return Reply{}, &rooms.Error{Code: rooms.CodeUnavailable, Message: "the application's handler did not answer; try again shortly", Err: err}
	}
	return r, nil
}

// Close waits until the $disconnect posts in flight are done, or ctx ends.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// headers keeps the allowed handshake headers, as API Gateway writes them:
// one value each (joined by ", ") and every value.
func (c *Client) headers(h http.Header) (map[string]string, map[string][]string) {
	return hooks.AllowedHeaders(h, c.cfg.Headers)
}

// query returns the handshake's query without socket.io's own parameters.
func query(q url.Values) (map[string]string, map[string][]string) {
	return hooks.Query(q)
}
