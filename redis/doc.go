// Package redis holds what chatd needs to run as several instances behind
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
//
// Behind redis.addrs the client is a Redis Cluster or a Sentinel client.
// On Redis Cluster the keys that one script touches share a hash tag
// ({membership}, {presence}), so each of those key families lives on one
// shard; history, idempotency, sessions and the recovery stream spread out.
// Pub/Sub is the classic kind, which every node forwards to every other
// (sharded Pub/Sub is not used), and every instance publishes on the master
// serving the bus channel's slot, so that its messages keep their order
// (see publisher). With Sentinel, an instance whose own heartbeats stop
// coming back on its subscription (left on the old master after a
// failover) subscribes again, on the new master.
package redis
