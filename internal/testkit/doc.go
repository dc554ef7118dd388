// Package testkit is the harness chatd's Go tests share; no production code
// imports it.
//
// It holds what several packages' tests would otherwise write by hand:
//
//   - Client, a socket.io v5 client over Engine.IO v4 on a WebSocket, with
//     the frames socket.io-client sends: connect with auth, emit with an
//     acknowledgement, wait for an event, and raw Engine.IO frames for tests
//     of the transport itself; PollHandshake opens a long-polling session;
//   - Eventually, which polls a condition that has no event to wait on until
//     it holds or a timeout passes.
//
// testkit imports nothing of chatd's, so any package's tests can use it
// without an import cycle.
package testkit
