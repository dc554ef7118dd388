// Package cluster holds what chatd needs to run as several instances behind
// one Redis: the Redis implementations of the rooms package's stores
// (membership, presence, history, idempotency) and the socket.io adapter.
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
// Redis keys and channels, all under the configured prefix P:
//
//	P:bus                    channel every instance listens to: heartbeats, requests,
//	                         broadcasts to no room or to several rooms
//	P:node:<instance>        channel of one instance: answers to its requests
//	P:room:<nsp>:<room>      channel of one room, subscribed by the instances that
//	                         have a socket in it (a socket's own id is a room too)
//	P:recovery               stream of recoverable packets (XADD MAXLEN ~, and
//	                         entries older than the recovery window trimmed)
//	P:session:<pid>          a disconnected socket's session, expiring after the
//	                         maximum disconnection duration
//
// The stores use P:history:, P:idempotency:, P:{membership}: and P:{presence}:.
package cluster
