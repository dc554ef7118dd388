package redis

import (
	"context"
	"log/slog"
	"slices"

	"github.com/chatd/chatd/rooms"
	goredis "github.com/redis/go-redis/v9"
)

var (
	_ rooms.Membership   = (*RedisMembership)(nil)
	_ rooms.RoomCounting = (*RedisMembership)(nil)
)

// RedisMembershipOptions configures a [RedisMembership].
type RedisMembershipOptions struct {
	// Prefix starts every key; empty means [DefaultStorePrefix]. It may not
	// contain '{' or '}'.
	Prefix string
	// Logger receives the store's diagnostics; nil discards them.
	Logger *slog.Logger
}

// RedisMembership is the [rooms.Membership] of a cluster: two Redis sets per
// membership, shared by every instance.
//
// Keys: "<prefix>:{membership}:user:<userId>" is the set of the user's rooms
// and "<prefix>:{membership}:room:<room>" the set of the room's user ids.
// Join must check the user's room count and write both sets atomically, so
// one Lua script touches a user key and a room key. On Redis Cluster the keys
// of one script must share a slot, and a user is in many rooms and a room has
// many users, so no per-user or per-room hash tag can cover both: every
// membership key carries the one hash tag "{membership}". The trade-off is
// that all membership data and traffic sit on one cluster shard. Membership
// changes far less often than messages flow, and its data is small (two set
// entries per membership), so one shard carries it for any chat that fits
// chatd otherwise; history and idempotency keys are spread over all shards.
type RedisMembership struct {
	client goredis.UniversalClient
	keys   string // "<prefix>:{membership}:"
	log    *slog.Logger
}

// NewRedisMembership returns a [RedisMembership] on client.
func NewRedisMembership(client goredis.UniversalClient, opts RedisMembershipOptions) (*RedisMembership, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &RedisMembership{client: client, keys: prefix + ":{membership}:", log: logger}, nil
}

func (m *RedisMembership) userKey(userID string) string { return m.keys + "user:" + userID }
func (m *RedisMembership) roomKey(room string) string   { return m.keys + "room:" + room }

// membershipJoinScript adds a membership unless the user already has it
// (0) or is in ARGV[3] rooms already (-1); it returns 1 when it added it,
// 2 when it added it and the user is the room's only member.
// KEYS: the user's rooms, the room's members. ARGV: room, user id, maxRooms.
var membershipJoinScript = goredis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[2], ARGV[2])
  return 0
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 1 then return 2 end
return 1
`)

// membershipLeaveScript removes a membership and returns 1 when there was
// one, 2 when there was one and the room has no member left. KEYS: the
// user's rooms, the room's members. ARGV: room, user id.
var membershipLeaveScript = goredis.NewScript(`
local left = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if left == 1 and redis.call('SCARD', KEYS[2]) == 0 then return 2 end
return left
`)

// Join implements [rooms.Membership]. It is atomic across instances: two
// concurrent joins cannot take a user past maxRooms.
func (m *RedisMembership) Join(ctx context.Context, userID, room string, maxRooms int) (bool, error) {
	c, err := m.JoinCounted(ctx, userID, room, maxRooms)
	return c.Member, err
}

// JoinCounted implements [rooms.RoomCounting]: the script that adds the
// membership also counts the room's members, so that one join in the
// cluster reports the room's first member.
func (m *RedisMembership) JoinCounted(ctx context.Context, userID, room string, maxRooms int) (rooms.Change, error) {
	n, err := membershipJoinScript.Run(ctx, m.client,
		[]string{m.userKey(userID), m.roomKey(room)}, room, userID, maxRooms).Int()
	if err != nil {
		return rooms.Change{}, err
	}
	switch n {
	case 1, 2:
		return rooms.Change{Member: true, Room: n == 2}, nil
	case -1:
		return rooms.Change{}, rooms.ErrTooManyRooms
	default:
		return rooms.Change{}, nil
	}
}

// Leave implements [rooms.Membership].
func (m *RedisMembership) Leave(ctx context.Context, userID, room string) (bool, error) {
	c, err := m.LeaveCounted(ctx, userID, room)
	return c.Member, err
}

// LeaveCounted implements [rooms.RoomCounting].
func (m *RedisMembership) LeaveCounted(ctx context.Context, userID, room string) (rooms.Change, error) {
	n, err := membershipLeaveScript.Run(ctx, m.client,
		[]string{m.userKey(userID), m.roomKey(room)}, room, userID).Int()
	if err != nil {
		return rooms.Change{}, err
	}
	return rooms.Change{Member: n >= 1, Room: n == 2}, nil
}

// Rooms implements [rooms.Membership].
func (m *RedisMembership) Rooms(ctx context.Context, userID string) ([]string, error) {
	return m.sortedSet(ctx, m.userKey(userID))
}

// IsMember implements [rooms.Membership].
func (m *RedisMembership) IsMember(ctx context.Context, userID, room string) (bool, error) {
	return m.client.SIsMember(ctx, m.userKey(userID), room).Result()
}

// Members implements [rooms.Membership].
func (m *RedisMembership) Members(ctx context.Context, room string) ([]string, error) {
	return m.sortedSet(ctx, m.roomKey(room))
}

// sortedSet returns the members of the set at key, sorted, and an empty
// (non-nil) slice for a missing set.
func (m *RedisMembership) sortedSet(ctx context.Context, key string) ([]string, error) {
	out, err := m.client.SMembers(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out, nil
}
