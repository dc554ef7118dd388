package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/hooks"
	"github.com/chatd/chatd/hooks/apigateway"
	"github.com/chatd/chatd/rooms"
)

// The backend's hooks as the server uses them; package hooks and
// hooks/apigateway implement them, and cmd/chatd sets those that are
// configured. Each returns a *rooms.Error the client may see.
type (
	// ConnectHook is asked about each new socket's handshake.
	ConnectHook interface {
		Connect(ctx context.Context, req hooks.ConnectRequest) (*hooks.ConnectResult, error)
	}
	// JoinHook is asked before a user joins a room.
	JoinHook interface {
		Join(ctx context.Context, req hooks.JoinRequest) error
	}
	// MessageHook is asked before a message is stored.
	MessageHook interface {
		Message(ctx context.Context, req hooks.MessageRequest) (*hooks.MessageResult, error)
	}
	// RPCHook answers the clients' rpc requests.
	RPCHook interface {
		RPC(ctx context.Context, req hooks.RPCRequest) (json.RawMessage, error)
	}
	// GatewayHook hands a socket's life to an API Gateway handler.
	GatewayHook interface {
		Connect(ctx context.Context, conn apigateway.Conn) error
		Disconnect(conn apigateway.Conn, code int, reason string)
		Default(ctx context.Context, conn apigateway.Conn, event, body string) (apigateway.Reply, error)
	}
)

// Hooks are the backend's hooks; a nil one is off.
type Hooks struct {
	Connect ConnectHook
	Join    JoinHook
	Message MessageHook
	RPC     RPCHook
	Gateway GatewayHook
	// Headers are the handshake headers the connect hook gets.
	Headers []string
}

// Socket data keys of what the connect hook answered.
const (
	// dataHookData is the connect hook's data, a JSON object.
	dataHookData = "hookData"
	// dataHookAllowedRooms are the connect hook's allowedRooms, kept
	// apart from a token's, which a refresh replaces.
	dataHookAllowedRooms = "hookAllowedRooms"
)

// hookAnswer is what the connect hooks settled for a connecting socket.
type hookAnswer struct {
	data         map[string]any
	allowedRooms []string
}

// connectHooks asks the connect hook (and API Gateway's $connect) about a
// connecting socket whose own authentication named u (no one in hook
// mode). It returns the user the socket is, or the refusal for the client.
func (s *Server) connectHooks(sock *socket.Socket, u rooms.User) (rooms.User, hookAnswer, *socket.ExtendedError) {
	var ans hookAnswer
	h := s.hooks
	hs := sock.Handshake()
	if h.Connect != nil {
		req := hooks.ConnectRequest{
			SocketID:  string(sock.Id()),
			Transport: sock.Conn().Transport().Name(),
			Address:   s.guard.socketAddr(sock),
			Query:     map[string]string{},
			Headers:   map[string]string{},
			Auth:      hs.Auth,
		}
		if one, _ := hooks.AllowedHeaders(hs.Headers.Header(), h.Headers); one != nil {
			req.Headers = one
		}
		if one, _ := hooks.Query(handshakeQuery(hs)); one != nil {
			req.Query = one
		}
		if req.Auth == nil {
			req.Auth = map[string]any{}
		}
		if u.ID != "" {
			req.User = &hooks.User{UserID: u.ID, Name: u.Name}
		}
		res, err := h.Connect.Connect(context.Background(), req)
		if err != nil {
			e := rooms.ErrorOf(err)
			s.log.Debug("connection refused by the connect hook", "code", e.Code, "reason", e.Message, "address", hs.Address)
			return u, ans, refusal(e.Code, e.Message)
		}
		if res != nil {
			if res.UserID != "" && res.UserID != u.ID {
				if s.cfg.AuthMode == AuthJWT {
					s.logFailure("the connect hook named another user than the token; connection refused", "token_user", u.ID, "hook_user", res.UserID)
					return u, ans, refusal(rooms.CodeUnauthorized, "the application named another user than the token")
				}
				u = rooms.User{ID: res.UserID}
				u.Name, _ = displayName(nil, u.ID)
			}
			if res.Name != "" {
				u.Name = res.Name
			}
			ans = hookAnswer{data: res.Data, allowedRooms: res.AllowedRooms}
		}
	}
	if u.ID == "" {
		// Hook mode: only the connect hook's answer names a user.
		return u, ans, refusal(rooms.CodeUnauthorized, "the application named no user for this connection")
	}
	return u, ans, nil
}

// gatewayConnect posts $connect for a socket; nil lets it in.
func (s *Server) gatewayConnect(sock *socket.Socket, connectedAt time.Time) *socket.ExtendedError {
	if s.hooks.Gateway == nil {
		return nil
	}
	if err := s.hooks.Gateway.Connect(context.Background(), s.gatewayConn(sock, connectedAt, true)); err != nil {
		e := rooms.ErrorOf(err)
		s.log.Debug("connection refused by $connect", "code", e.Code, "reason", e.Message)
		return refusal(e.Code, e.Message)
	}
	return nil
}

// gatewayConn describes a socket as API Gateway's events do.
func (s *Server) gatewayConn(sock *socket.Socket, connectedAt time.Time, handshake bool) apigateway.Conn {
	hs := sock.Handshake()
	c := apigateway.Conn{
		ID:          string(sock.Id()),
		ConnectedAt: connectedAt,
		SourceIP:    s.guard.socketAddr(sock),
	}
	if hs != nil && hs.Headers != nil {
		h := hs.Headers.Header()
		c.UserAgent = h.Get("User-Agent")
		if handshake {
			c.Headers = h
			c.Query = handshakeQuery(hs)
		}
	}
	return c
}

// handshakeQuery returns the handshake's query as url.Values.
func handshakeQuery(hs *socket.Handshake) url.Values {
	q := url.Values{}
	if hs == nil {
		return q
	}
	for k, v := range hs.Query {
		switch x := v.(type) {
		case string:
			q.Add(k, x)
		case []string:
			q[k] = append(q[k], x...)
		case []any:
			for _, e := range x {
				if s, ok := e.(string); ok {
					q.Add(k, s)
				}
			}
		}
	}
	return q
}

// addHookData records the connect hook's answer in a socket's data.
func addHookData(data map[string]any, ans hookAnswer) {
	if ans.data != nil {
		data[dataHookData] = ans.data
	}
	if len(ans.allowedRooms) > 0 {
		data[dataHookAllowedRooms] = append([]string(nil), ans.allowedRooms...)
	}
}

// hookUser is the socket's user as hook requests carry it.
func (c *conn) hookUser() hooks.User {
	u := hooks.User{UserID: c.user.ID, Name: c.user.Name}
	if m, ok := c.sock.Data().(map[string]any); ok {
		if d, ok := m[dataHookData].(map[string]any); ok {
			u.Data = d
		}
	}
	return u
}

// hookJoin asks the join hook, when there is one.
func (c *conn) hookJoin(ctx context.Context, room string) error {
	if c.s.hooks.Join == nil {
		return nil
	}
	return c.s.hooks.Join.Join(ctx, hooks.JoinRequest{SocketID: string(c.sock.Id()), User: c.hookUser(), Room: room})
}

// hookMessage asks the message hook, when there is one, and applies its
// answer to in. A socket outside the room is not asked about: storing
// refuses it anyway.
func (c *conn) hookMessage(ctx context.Context, in *rooms.Send) error {
	if c.s.hooks.Message == nil || !c.sock.Rooms().Has(socket.Room(in.Room)) {
		return nil
	}
	if err := rooms.ValidateText(in.Text, c.s.cfg.MessageBytes); err != nil {
		return err
	}
	if err := rooms.ValidateClientMsgID(in.ClientMsgID); err != nil {
		return err
	}
	res, err := c.s.hooks.Message.Message(ctx, hooks.MessageRequest{
		SocketID: string(c.sock.Id()), User: c.hookUser(), Room: in.Room, Text: in.Text, ClientMsgID: in.ClientMsgID,
	})
	if err != nil {
		return err
	}
	if res != nil && res.Text != nil {
		in.Text = *res.Text
	}
	return nil
}

// rpcMethod is what an rpc method name may be.
var rpcMethod = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)

// rpc forwards {method, data} to the rpc hook and answers {data}.
func (c *conn) rpc(ctx context.Context, args []any) (map[string]any, error) {
	p, err := decodePayload(args)
	if err != nil {
		return nil, err
	}
	method, err := p.str("method", true)
	if err != nil {
		return nil, err
	}
	if !rpcMethod.MatchString(method) {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "method must be 1 to 64 characters of A-Z a-z 0-9 _ . : / -")
	}
	if c.s.hooks.RPC == nil {
		return nil, rooms.Errorf(rooms.CodeNotFound, "this server answers no rpc requests: no backend is configured for them")
	}
	data, err := json.Marshal(p["data"])
	if err != nil {
		return nil, rooms.Errorf(rooms.CodeBadRequest, "data must be JSON")
	}
	out, err := c.s.hooks.RPC.RPC(ctx, hooks.RPCRequest{SocketID: string(c.sock.Id()), User: c.hookUser(), Method: method, Data: data})
	if err != nil {
		return nil, err
	}
	return map[string]any{"data": out}, nil
}

// gatewayDefault posts $default for a client event that is not one of
// chatd's own; a 2xx answer acknowledges {statusCode, body}.
func (c *conn) gatewayDefault(ctx context.Context, ev string, args []any) (map[string]any, error) {
	body := ""
	if len(args) > 0 {
		if s, ok := args[0].(string); ok {
			body = s
		} else if b, err := json.Marshal(args[0]); err == nil {
			body = string(b)
		} else {
			return nil, rooms.Errorf(rooms.CodeBadRequest, "the event's argument cannot be sent as JSON")
		}
	}
	r, err := c.s.hooks.Gateway.Default(ctx, c.gatewayConn(), ev, body)
	if err != nil {
		return nil, err
	}
	if !r.OK() {
		return nil, rooms.Errorf(statusCode(r.StatusCode), "the application's handler answered statusCode %d", r.StatusCode)
	}
	res := map[string]any{"statusCode": r.StatusCode}
	if r.Body != "" {
		res["body"] = r.Body
	}
	return res, nil
}

// statusCode maps a handler's HTTP status to the protocol's code.
func statusCode(status int) rooms.Code {
	switch {
	case status == http.StatusUnauthorized:
		return rooms.CodeUnauthorized
	case status == http.StatusForbidden:
		return rooms.CodeForbidden
	case status == http.StatusNotFound:
		return rooms.CodeNotFound
	case status == http.StatusRequestEntityTooLarge:
		return rooms.CodeTooLarge
	case status == http.StatusTooManyRequests:
		return rooms.CodeRateLimited
	case status >= 500:
		return rooms.CodeUnavailable
	}
	return rooms.CodeBadRequest
}

// gatewayConn describes the connection for API Gateway's events.
func (c *conn) gatewayConn() apigateway.Conn {
	_, at, _ := socketUser(c.sock.Data())
	return c.s.gatewayConn(c.sock, time.UnixMilli(at), false)
}

// disconnectStatus is the WebSocket close status API Gateway would report
// for a socket.io disconnect reason.
func disconnectStatus(reason string) int {
	switch reason {
	case "client namespace disconnect", "server namespace disconnect", "io server disconnect", "forced server close":
		return 1000 // normal closure
	case "transport close", "server shutting down", "forced close":
		return 1001 // going away
	case "parse error":
		return 1002 // protocol error
	}
	return 1006 // abnormal closure: ping timeout, transport error
}
