// Package protocol is chatd's socket protocol as data: the table of request
// events a client sends, the names of the events the server sends, the
// names no one else may emit, and the default limits that config and server
// share. It imports nothing of chatd's, so that every package that needs to
// know an event name (dispatch in server, the metrics, the server API's
// reserved names, config's validation) reads it from one place.
//
// The protocol itself, with payloads, acknowledgements and errors, is
// described for users in docs/protocol.md; a test holds the request table
// here against the table there.
package protocol
