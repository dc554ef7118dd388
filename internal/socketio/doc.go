// Package socketio is chatd's layer over the socket.io library
// (github.com/zishang520/socket.io v3.0.6): every place where chatd works
// around, replaces or extends a part of the library lives here, so that a
// reader who upgrades the library knows what to check.
//
//   - PollGuard (pollguard.go) works around a data race of the engine's
//     long-polling transport: closing a transport from another goroutine
//     writes the headers of a request its own handler may be writing.
//   - ReleaseAfterUpgrade (upgrade.go) lets go of net/http's per-connection
//     buffers once a WebSocket upgrade has hijacked the connection; the
//     library keeps the upgrade request's ResponseWriter for the socket's
//     whole life.
//   - RecoveryAdapterBuilder and LocalAdapterBuilder (recovery.go) replace
//     the library's in-memory adapters of a single instance: a bounded
//     record of packets and sessions for connection state recovery (the
//     library keeps every packet and replays any number), and the cheaper
//     local fan-out of package fanout.
//   - Package wstransport is chatd's own WebSocket transport (bounded send
//     buffers, dropped volatile packets, idle connections without a
//     goroutine); polling stays the library's.
//   - Package fanout encodes a broadcast once for all local recipients
//     instead of once per socket.
//   - Package warm runs socket events on warm worker goroutines instead of
//     the library's small-stack goroutine per packet.
package socketio
