// Package sioadapter is chatd's socket.io adapter over Redis, which lets
// several chatd instances serve one set of rooms.
//
// The adapter (AdapterBuilder, one RedisAdapter per namespace) embeds the
// socket.io library's in-memory adapter, which delivers to this instance's
// sockets, and carries over Redis pub/sub what concerns the others: room
// broadcasts, socketsJoin/socketsLeave/disconnectSockets, fetchSockets,
// serverSideEmit, heartbeats; and, with connection state recovery on, it
// keeps disconnected sessions and missed packets in Redis so that a client
// can resume on any instance.
//
// Socket.io's socketsJoin/socketsLeave are fire-and-forget; the adapter also
// offers AddSocketsWait and DelSocketsWait (server.MembershipSync), which
// return once every live instance has applied the change and, for a join,
// has its subscription to the rooms' channels confirmed by Redis, so that a
// message sent afterwards reaches exactly the sockets in the room.
//
// The builder is made of parts that each guard their own state, one file
// each: nodes.go (the other instances and the heartbeats), subscriptions.go
// (the subscription connection, room channels, barriers), requests.go
// (requests waiting for answers), publish.go (the publishing queue and
// loop), recovery.go (the recovery stream and sessions) and wire.go (the
// message format). namespace.go and membership.go are the namespace
// adapter's operations.
//
// Redis channels, streams and keys, all under the configured prefix P:
//
//	P:bus                    channel every instance listens to: heartbeats, requests,
//	                         broadcasts to no room or to several rooms
//	P:node:<instance>        channel of one instance (its instance.id): answers to
//	                         its requests
//	P:room:<nsp>:<room>      channel of one room, subscribed by the instances that
//	                         have a socket in it (a socket's own id is a room too)
//	P:recovery               stream of recoverable packets (XADD MAXLEN ~, and
//	                         entries older than the recovery window trimmed)
//	P:session:<pid>          string: a disconnected socket's session, expiring after
//	                         the maximum disconnection duration
//
// The Redis stores of package redis use the same prefix (P:history:,
// P:idempotency:, P:{membership}:, P:{presence}:).
//
// Pub/Sub is the classic kind, which every Redis Cluster node forwards to
// every other (sharded Pub/Sub is not used), and every instance publishes on
// the master serving the bus channel's slot, so that its messages keep their
// order (see publisher.conn); the recovery stream and the sessions spread
// over the shards. With Sentinel, an instance whose own heartbeats stop
// coming back on its subscription (left on the old master after a
// failover) subscribes again, on the new master.
package sioadapter
