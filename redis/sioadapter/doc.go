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
// On one Redis server a store can also run a broadcast inside its own
// script (StoredBroadcast, stored.go): chatd stores a message, records it
// for recovery and publishes it in one round trip, and the receivers put
// the message's id, which only the script knew, into the event.
//
// The builder is made of parts that each guard their own state, one file
// each: nodes.go (the other instances and the heartbeats), subscriptions.go
// (the subscription connection, room channels, barriers), sharded.go (the
// same on Redis Cluster, one connection per master), requests.go (requests
// waiting for answers), publish.go (the publishing queue and loop),
// recovery.go (the recovery stream and sessions), stored.go (broadcasts
// run by a store's script) and wire.go (the message format). namespace.go and membership.go are the namespace adapter's
// operations.
//
// Redis channels, streams and keys, all under the configured prefix P. On
// one Redis server and with Sentinel (classic Pub/Sub):
//
//	P:bus                    channel every instance listens to: heartbeats, requests,
//	                         broadcasts to no room or to several rooms
//	P:node:<instance>        channel of one instance (its instance.id): answers to
//	                         its requests
//	P:room:<nsp>:<room>      channel of one room, subscribed by the instances that
//	                         have a socket in it (a socket's own id is a room too)
//
// On Redis Cluster (sharded Pub/Sub: SSUBSCRIBE, SPUBLISH), each a shard
// channel whose hash tag picks its slot:
//
//	P:bus:{b<i>}             the bus in 16 partitions, i from 0 to 15: every instance
//	                         listens to all, and publishes on the one its instance id
//	                         hashes to (FNV-1a)
//	P:node:{<instance>}      channel of one instance
//	P:room:<nsp>:{r:<room>}  channel of one room; its hash tag is redistag.Room, which
//	                         the room's keys may share to live in the same slot (a
//	                         prefix or namespace containing '{' would take the tag)
//
// and on both:
//
//	P:recovery               stream of recoverable packets (XADD MAXLEN ~, and
//	                         entries older than the recovery window trimmed)
//	P:session:<pid>          string: a disconnected socket's session, expiring after
//	                         the maximum disconnection duration
//
// The Redis stores of package redis use the same prefix (P:layout,
// P:{r:<room>}:..., P:{u:<user>}:..., P:{presence}:...); a room's keys and
// its cluster channel share the room's hash tag.
//
// On one server and with Sentinel, Pub/Sub is the classic kind: sharded
// Pub/Sub would bring nothing there, since a single server relays nothing
// to other nodes, and every instance's messages, on every channel, reach
// the others in the order it sent them (one publishing connection, one
// subscription connection). With Sentinel, an instance whose own heartbeats
// stop coming back on its subscription (left on the old master after a
// failover) subscribes again, on the new master.
//
// On Redis Cluster, classic Pub/Sub would be relayed by every node to every
// other and, to keep its order, be published through one master; sharded
// Pub/Sub keeps each channel on the master of its slot, so each master
// carries only its share. An instance holds one subscription connection per
// master serving a channel it needs, subscribes to each channel on the
// connection to its slot's master (one SSUBSCRIBE per slot: one command may
// not name several), and publishes with SPUBLISH, which go-redis routes by
// slot (a pipeline keeps the order of its commands per master). What is
// ordered there:
//
//   - One instance's messages on one channel reach each instance in the
//     order they were sent, each at most once: its broadcasts to one room; its bus messages
//     (heartbeats, requests, broadcasts to several rooms or to everyone),
//     all on its own bus partition; the answers it sends to one instance.
//   - Messages on different channels keep no order between them: a
//     broadcast to room A and then one to room B, or to room A and then to
//     everyone, may arrive the other way round.
//
// What relied on the order across channels keeps its guarantee another
// way: AddSocketsWait and DelSocketsWait wait for the answers, and
// WaitSubscribed for Redis's confirmation of each SSUBSCRIBE on its
// master's connection (there is no PING barrier), so a broadcast sent once
// they return reaches exactly the room's sockets; an answer travels only
// after the request it answers was handled; the heartbeat echo check
// watches this instance's own partition.
//
// Subscriptions follow the slots. When a slot moves or its master fails
// over, Redis drops its channels from the old master's subscribers (a
// sunsubscribe push) or the connection breaks; the adapter reloads the
// slot map and subscribes again on the new master. Besides, every
// shardCheckInterval (1 s; 200 ms while a channel lacks a subscription) it
// reloads the map, which also steers publishing, and moves a channel whose
// node's own view no longer gives it the slot, to a node that says it is a
// master. A message is handled only from the connection its channel is on
// now, so a channel never delivers from two. The messages of a room sent
// between the move and the new subscription are lost: after Redis has
// moved the slot, or promoted the replica, a few round trips, and at most
// about the check interval plus a round trip when Redis did not say (in
// the tests, about 0.1 to 0.2 s after a move or a planned failover). A
// master that crashes takes its rooms with it until its replica is
// promoted, which Redis does after cluster-node-timeout and an election.
// While a master hands over in a planned failover (CLUSTER FAILOVER), a
// broadcast or two sent to the old master have been seen to arrive after
// later ones sent to the new one: the messages of the publish queue carry
// a sequence number (wireMessage.Seq), and a receiver drops one that is
// not newer than what it handled of its sender on that channel (see seqs),
// so such a message is lost within the gap, never delivered out of order.
//
// Instances on classic and on sharded Pub/Sub do not hear each other. The
// heartbeat says which kind its sender uses (featureSharded), and on Redis
// Cluster an instance also looks for subscribers of the classic bus (an
// older build) every heartbeat timeout; both are logged as errors.
package sioadapter
