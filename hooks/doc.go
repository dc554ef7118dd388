// Package hooks makes the requests chatd sends to the application's backend
// while a client waits for the answer: connect (may refuse a socket or name
// its user), join (may refuse a join), message (may refuse a message or
// replace its text) and rpc (answers a client's own request). Package
// hooks/apigateway builds on the same [Caller] to post API Gateway's
// WebSocket events.
//
// Every request is a signed JSON POST (package internal/signature) bounded
// by a timeout; the answer is read up to [MaxResponseBytes]. Anything but a
// 2xx answer whose body is one of the documented JSON objects, a redirect
// included, is a failure, and a failed hook refuses or allows as its
// on_error setting says. Synchronous hooks never retry: the client is
// waiting, and a retry would only make it wait longer.
//
// The shapes are documented for backends in docs/hooks.md.
package hooks
