package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/rooms"
)

// Endpoint is one hook's backend URL and what to do when it fails.
type Endpoint struct {
	// URL is where the hook POSTs; empty turns it off.
	URL string
	// Timeout bounds one request.
	Timeout time.Duration
	// AllowOnError lets the action go ahead, unchanged, when the backend
	// fails; otherwise it is refused with unavailable.
	AllowOnError bool
}

// Config configures a [Client]: one Endpoint per hook.
type Config struct {
	Connect, Join, Message, RPC Endpoint
}

// Client asks the backend's hooks. Its methods return a *rooms.Error whose
// code and sentence the client may see: the backend's own refusal, or
// unavailable when the backend failed and the hook refuses on failure.
type Client struct {
	cfg    Config
	caller *Caller
}

// NewClient returns a Client that posts through caller.
func NewClient(cfg Config, caller *Caller) (*Client, error) {
	if caller == nil {
		return nil, errors.New("hooks: a Caller is required")
	}
	for _, e := range []Endpoint{cfg.Connect, cfg.Join, cfg.Message, cfg.RPC} {
		if e.URL != "" && e.Timeout <= 0 {
			return nil, fmt.Errorf("hooks: %s needs a timeout above 0", e.URL)
		}
	}
	return &Client{cfg: cfg, caller: caller}, nil
}

// Limits of what a connect hook may answer.
const (
	// MaxDataBytes bounds the data of a connect answer, as JSON, in bytes:
	// it travels with the socket and in every later hook request.
	MaxDataBytes = 4 << 10
	// maxNameLength is the longest display name, in characters, as for
	// the name a client or a token gives.
	maxNameLength = 64
	// maxRefusalLength is the longest refusal sentence passed to a client,
	// in characters; a longer one is cut.
	maxRefusalLength = 256
)

// unavailable is the error a client sees when a hook that refuses on
// failure failed.
func unavailable(f error) *rooms.Error {
	return &rooms.Error{Code: rooms.CodeUnavailable, Message: "the application's backend did not answer; try again shortly", Err: f}
}

// call posts req to e and decodes its answer; a refusal comes back as a
// *rooms.Error, a failure as a *Failure (after it was counted).
func call[T any](ctx context.Context, c *Client, hook string, e Endpoint, req any, check func(*T) error) (*T, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("hooks: encoding the %s request: %w", hook, err)
	}
	data, err := c.caller.Post(ctx, hook, e.URL, e.Timeout, body)
	if err != nil {
		c.caller.Record(hook, OutcomeFail, err)
		return nil, err
	}
	res, refusal, err := decodeAnswer(data, check)
	if err != nil {
		c.caller.Record(hook, OutcomeFail, err)
		return nil, err
	}
	if refusal != nil {
		c.caller.Record(hook, OutcomeRefuse, nil)
		return nil, refusal
	}
	c.caller.Record(hook, OutcomeAllow, nil)
	return res, nil
}

// decodeAnswer reads {"result": ...} or {"error": ...}; anything else,
// both or neither, is a *Failure.
func decodeAnswer[T any](data []byte, check func(*T) error) (*T, *rooms.Error, error) {
	var a answer[T]
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, nil, failure(ReasonBadResponse, "the answer is not the expected JSON object: %v", err)
	}
	switch {
	case a.Result != nil && a.Error != nil:
		return nil, nil, failure(ReasonBadResponse, "the answer has both result and error")
	case a.Error != nil:
		return nil, refusalError(a.Error), nil
	case a.Result == nil:
		return nil, nil, failure(ReasonBadResponse, "the answer has neither result nor error")
	}
	if check != nil {
		if err := check(a.Result); err != nil {
			return nil, nil, failure(ReasonBadResponse, "%v", err)
		}
	}
	return a.Result, nil, nil
}

// backendCodes are the codes a backend's refusal may carry; any other is
// forbidden. internal is chatd's own.
var backendCodes = map[rooms.Code]bool{
	rooms.CodeBadRequest: true, rooms.CodeUnauthorized: true, rooms.CodeForbidden: true, rooms.CodeNotFound: true,
	rooms.CodeTooLarge: true, rooms.CodeRateLimited: true, rooms.CodeUnavailable: true,
}

// refusalError turns a backend's error object into what the client sees:
// a known code (forbidden otherwise) and a sentence without control
// characters, cut to maxRefusalLength.
func refusalError(r *Refusal) *rooms.Error {
	code := rooms.Code(r.Code)
	if !backendCodes[code] {
		code = rooms.CodeForbidden
	}
	msg := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(r.Message, ""))
	msg = strings.TrimSpace(msg)
	if utf8.RuneCountInString(msg) > maxRefusalLength {
		msg = string([]rune(msg)[:maxRefusalLength])
	}
	if msg == "" {
		msg = "refused by the application"
	}
	return &rooms.Error{Code: code, Message: msg}
}

// failed applies e's fail mode to a failure: nil to go ahead, or
// unavailable. Other errors (refusals) pass through.
func failed(e Endpoint, err error) error {
	var f *Failure
	if !errors.As(err, &f) {
		return err
	}
	if e.AllowOnError {
		return nil
	}
	return unavailable(err)
}

// Connect asks the connect hook about a socket's handshake. A nil result
// with a nil error means the backend failed and the hook allows on
// failure: chatd's own authentication stands.
func (c *Client) Connect(ctx context.Context, req ConnectRequest) (*ConnectResult, error) {
	req.Hook = HookConnect
	res, err := call(ctx, c, HookConnect, c.cfg.Connect, req, checkConnect)
	if err != nil {
		return nil, failed(c.cfg.Connect, err)
	}
	return res, nil
}

// checkConnect checks a connect result as chatd checks a token's claims.
func checkConnect(r *ConnectResult) error {
	if r.UserID != "" {
		if err := rooms.ValidateUserID(r.UserID); err != nil {
			return errors.New("result.userId must be 1 to 128 bytes of UTF-8 without control characters")
		}
	}
	if r.Name != "" {
		if !utf8.ValidString(r.Name) || utf8.RuneCountInString(r.Name) > maxNameLength {
			return fmt.Errorf("result.name must be 1 to %d characters", maxNameLength)
		}
		for _, ch := range r.Name {
			if ch < 0x20 || ch == 0x7f {
				return errors.New("result.name must not contain control characters")
			}
		}
	}
	for _, p := range r.AllowedRooms {
		if rooms.ValidatePattern(p) != nil {
			return errors.New("result.allowedRooms must be a list of room patterns such as \"team-*\"")
		}
	}
	if r.Data != nil {
		b, err := json.Marshal(r.Data)
		if err != nil || len(b) > MaxDataBytes {
			return fmt.Errorf("result.data must be a JSON object of at most %d bytes", MaxDataBytes)
		}
	}
	return nil
}

// Join asks the join hook whether the user may join req.Room; nil allows.
func (c *Client) Join(ctx context.Context, req JoinRequest) error {
	req.Hook = HookJoin
	_, err := call[struct{}](ctx, c, HookJoin, c.cfg.Join, req, nil)
	return failed(c.cfg.Join, err)
}

// Message asks the message hook about a message before it is stored. A
// nil result with a nil error lets the message go as it is.
func (c *Client) Message(ctx context.Context, req MessageRequest) (*MessageResult, error) {
	req.Hook = HookMessage
	res, err := call(ctx, c, HookMessage, c.cfg.Message, req, checkMessage)
	if err != nil {
		return nil, failed(c.cfg.Message, err)
	}
	return res, nil
}

// RPC forwards a client's rpc request and returns the backend's data. A
// failed backend always answers unavailable.
func (c *Client) RPC(ctx context.Context, req RPCRequest) (json.RawMessage, error) {
	req.Hook = HookRPC
	if req.Data == nil {
		req.Data = json.RawMessage("null")
	}
	res, err := call[RPCResult](ctx, c, HookRPC, c.cfg.RPC, req, nil)
	var f *Failure
	if errors.As(err, &f) {
		return nil, unavailable(err)
	}
	if err != nil {
		return nil, err
	}
	if len(res.Data) == 0 {
		return json.RawMessage("null"), nil
	}
	return res.Data, nil
}

// checkMessage checks a replacement text; its length is checked where the
// message is stored, against limits.message_bytes.
func checkMessage(r *MessageResult) error {
	if r.Text != nil && (*r.Text == "" || !utf8.ValidString(*r.Text)) {
		return errors.New("result.text must be a non-empty UTF-8 string")
	}
	return nil
}
