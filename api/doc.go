// Package api is chatd's HTTP server API, described in openapi.yaml beside
// it: /api/v1 (send to rooms, read history and presence, emit custom
// events, look up and disconnect connections) behind a bearer token, and
// the @connections routes of API Gateway's management API, also below a
// stage (/{stage}/@connections/{socketId}), behind the token or a SigV4
// signature.
//
// A [Handler] does not listen: cmd/chatd mounts it on the socket server for
// the [Patterns]. It applies the chat rules through the same rooms.Chat as
// the sockets and delivers through the server's server.Delivery, so both
// paths follow one set of rules and act on the whole cluster.
package api
