// Package redis holds what chatd keeps in Redis to run as several instances
// behind one Redis: the Redis implementations of the rooms package's stores
// (RedisMembership, RedisPresence, RedisHistory and RedisMemberHistory,
// RedisIdempotency) and NewClient, which builds the go-redis client for the
// redis.* settings. The socket.io adapter that carries broadcasts between
// the instances is package redis/sioadapter.
//
// Redis keys, all under the configured prefix P:
//
//	P:{membership}:user:<user>      set: the rooms a user is a member of
//	P:{membership}:room:<room>      set: the members of a room
//	P:{presence}:instances          sorted set: instance id -> expiry (Unix ms)
//	P:{presence}:instance:<id>      hash: socket id -> user id, for one instance
//	P:{presence}:sockets            hash: user id -> connected sockets, all instances
//	P:{presence}:names              hash: user id -> display name of an online user
//	P:history:<room>                stream: a room's latest messages, ids assigned by Redis
//	P:idempotency:<key>             string: "pending", then the message sent with a
//	                                clientMsgId, expiring
//
// Behind redis.addrs the client is a Redis Cluster or a Sentinel client.
// On Redis Cluster the keys that one script touches share a hash tag
// ({membership}, {presence}), so each of those key families lives on one
// shard; history and idempotency keys spread out. With one server (not
// Redis Cluster) a message's membership check rides in its append
// (RedisMemberHistory).
package redis
