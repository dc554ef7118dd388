// Package redis holds what chatd keeps in Redis to run as several instances
// behind one Redis: the Redis implementations of the rooms package's stores
// (RedisMembership, RedisPresence, RedisHistory and RedisMemberHistory,
// RedisIdempotency) and NewClient, which builds the go-redis client for the
// redis.* settings. The socket.io adapter that carries broadcasts between
// the instances is package redis/sioadapter.
//
// Redis keys, all under the configured prefix P (layout version 2, see
// [CheckLayout]):
//
//	P:layout                        string: the key layout version, "2"
//	P:{u:<user>}:rooms              set: the rooms a user is a member of (the user's side)
//	P:{u:<user>}:clock              string: the version of the user's last join or leave
//	P:{r:<room>}:members            hash: a room's members (the room's side) -> version
//	P:{r:<room>}:left               sorted set: users who left a room lately -> version
//	P:{r:<room>}:history            stream: a room's latest messages, ids assigned by Redis
//	P:{r:<room>}:idem:<key>         string: "pending", then the message sent with a
//	                                clientMsgId to the room, expiring
//	P:{presence}:instances          sorted set: instance id -> expiry (Unix ms)
//	P:{presence}:instance:<id>      hash: socket id -> user id, for one instance
//	P:{presence}:sockets            hash: user id -> connected sockets, all instances
//	P:{presence}:names              hash: user id -> display name of an online user
//
// Behind redis.addrs the client is a Redis Cluster or a Sentinel client.
// On Redis Cluster the keys that one script touches share a hash tag: a
// room's keys carry the room's tag ({r:<room>}, internal/redistag), so a
// message's membership check, clientMsgId lookup and record, and append
// are one script on one slot ([RedisMemberHistory]); a user's keys carry
// the user's, and a join or leave writes the user's side and then the
// room's ([RedisMembership] says why that is safe); presence keys share
// {presence}, on one shard. Rooms and users spread over all shards.
//
// The layout before version 2 had all membership under "{membership}" and
// named P:history:<room> and P:idempotency:<key>; [CheckLayout] refuses
// such keys at start and [MigrateLayout] moves them.
package redis
