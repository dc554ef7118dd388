package hooks

import "encoding/json"

// The JSON a hook request carries and its answer. Every request is an
// object with "hook" naming it; every answer is {"result": {...}} to allow
// or {"error": {"code", "message"}} to refuse. Fields may be added; none
// is renamed or removed.

// Hook names, the "hook" field of a request, the X-Chatd-Hook header and
// the hook label of the metrics.
const (
	HookConnect = "connect"
	HookJoin    = "join"
	HookMessage = "message"
	HookRPC     = "rpc"
)

// User is the user of the socket a request is about.
type User struct {
	UserID string `json:"userId"`
	Name   string `json:"name"`
	// Data is what the connect hook answered as data, when it did.
	Data map[string]any `json:"data,omitempty"`
}

// ConnectRequest is the connect hook's request: the handshake of a socket.
type ConnectRequest struct {
	Hook     string `json:"hook"`
	SocketID string `json:"socketId"`
	// Transport is "polling" or "websocket": the transport of the
	// handshake.
	Transport string `json:"transport"`
	// Address is the client's IP address (see http.trusted_proxies).
	Address string `json:"address"`
	// Headers holds the handshake headers hooks.headers allows, each one
	// value (several joined by ", ").
	Headers map[string]string `json:"headers"`
	// Query holds the handshake's query parameters but socket.io's own
	// (EIO, transport, sid, t, j), one value each (the first).
	Query map[string]string `json:"query"`
	// Auth is the client's auth object (socket.io-client's auth option).
	Auth map[string]any `json:"auth"`
	// User is who chatd's own authentication says the socket is (dev and
	// jwt modes); absent in hook mode, where the answer names the user.
	User *User `json:"user,omitempty"`
}

// ConnectResult is the result of a connect hook's answer. Every field is
// optional but userId in hook mode.
type ConnectResult struct {
	// UserID names the socket's user; in jwt mode it must be the token's.
	UserID string `json:"userId"`
	// Name is the display name; empty keeps chatd's (or the user id).
	Name string `json:"name"`
	// Data is a JSON object kept with the socket: the client gets it in
	// session.data, and every later hook request of the socket carries it.
	Data map[string]any `json:"data"`
	// AllowedRooms are room patterns of granted rooms the user may join,
	// as a token's allowed_rooms claim.
	AllowedRooms []string `json:"allowedRooms"`
}

// JoinRequest is the join hook's request, sent after the room's policy let
// the user in.
type JoinRequest struct {
	Hook     string `json:"hook"`
	SocketID string `json:"socketId"`
	User     User   `json:"user"`
	Room     string `json:"room"`
}

// MessageRequest is the message hook's request, sent before the message is
// stored.
type MessageRequest struct {
	Hook        string `json:"hook"`
	SocketID    string `json:"socketId"`
	User        User   `json:"user"`
	Room        string `json:"room"`
	Text        string `json:"text"`
	ClientMsgID string `json:"clientMsgId,omitempty"`
}

// MessageResult is the result of a message hook's answer.
type MessageResult struct {
	// Text, when set, replaces the message's text before it is stored; it
	// must pass the same checks as the client's text.
	Text *string `json:"text"`
}

// RPCRequest is the rpc hook's request.
type RPCRequest struct {
	Hook     string `json:"hook"`
	SocketID string `json:"socketId"`
	User     User   `json:"user"`
	Method   string `json:"method"`
	// Data is the client's data, any JSON value (null when it sent none).
	Data json.RawMessage `json:"data"`
}

// RPCResult is the result of an rpc hook's answer.
type RPCResult struct {
	// Data is any JSON value; the client gets it as the data of its
	// acknowledgement.
	Data json.RawMessage `json:"data"`
}

// Refusal is the error object of an answer that refuses.
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// answer is the object every hook answers.
type answer[T any] struct {
	Result *T       `json:"result"`
	Error  *Refusal `json:"error"`
}
