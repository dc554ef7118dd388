// Package server is chatd's network face: the socket.io v3 server with the
// client protocol's event handlers, and the HTTP routes beside it (health,
// readiness, metrics and the web client). Package api serves the server API
// on top of it: it delivers through the server's [Delivery] and is mounted
// with [Server.Handle].
//
// A [Server] is an http.Handler; it does not listen by itself. It decodes and
// validates what clients send, applies the chat rules through a rooms.Chat,
// and delivers the results through the socket.io adapter it was given (the
// in-memory one on a single instance, the Redis one in a cluster). It knows
// nothing of Redis.
package server
