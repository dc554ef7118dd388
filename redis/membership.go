package redis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

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

// RedisMembership is the [rooms.Membership] of a cluster, shared by every
// instance. Each membership is written twice, once on the user's side and
// once on the room's:
//
//	<prefix>:{u:<userId>}:rooms   set: the user's rooms
//	<prefix>:{u:<userId>}:clock   string: the version of the user's last join or leave
//	<prefix>:{r:<room>}:members   hash: member user id -> version of the join
//	<prefix>:{r:<room>}:left      sorted set: user id -> version of a recent leave
//
// Why two sides: a chat message must check its sender's membership in the
// same script as its history append, so the set the message path reads
// carries the room's hash tag (see [RedisMemberHistory]); the per-user room
// limit must be checked in the same script as a join adds the room, so the
// user's rooms carry the user's tag. A user has many rooms and a room many
// users, so no one slot holds both on Redis Cluster (the layout before
// this one put all membership under one "{membership}" tag, on one shard,
// and a message then cost several round trips there).
//
// The user side decides; the room side follows it. A join or leave runs
// two scripts in a fixed order: the first, on the user's slot, checks the
// limit, changes the user's rooms and takes a version from the user's
// clock (Redis TIME in microseconds, kept above the previous version); the
// second, on the room's slot, makes the room agree with the state the user
// side had at that version, unless it already applied a newer one of that
// user. So:
//
//   - the limit holds under any concurrency: it is checked and taken in one
//     atomic step on the user's slot;
//   - concurrent joins and leaves of one user and room end as the last of
//     them on the user side left it, whatever order their second steps
//     arrive in: an older step is dropped. A leave's version stays in the
//     room's "left" set for [membershipLeftTTL], long enough for any step
//     still in flight behind it (a Redis command times out in seconds);
//   - a join or leave interrupted between its two scripts (a Redis error,
//     an instance that stopped) leaves the user side ahead: after a join
//     the user lists the room (and it counts towards the limit) but cannot
//     send to it yet; after a leave the user no longer lists the room but
//     can still send to it. The caller got an error and retries, and any
//     later join or leave of that user and room repairs it, because each
//     one runs the room step again, even when the user side had nothing to
//     change.
//
// What the room side answers (IsMember, Members, and whether a join or
// leave changed the membership or the room's occupancy) is what the
// message path sees; Rooms answers from the user side. The whole cost is
// a second round trip per join and leave, which are rare next to messages.
type RedisMembership struct {
	client goredis.UniversalClient
	prefix string
	log    *slog.Logger
}

// membershipLeftTTL is how long the room side remembers a leave, so that a
// join step issued before it that arrives after it is dropped.
const membershipLeftTTL = 10 * time.Minute

// membershipIdleClockTTL is how long the clock of a user without rooms
// lives: past the leaves it still has to order.
const membershipIdleClockTTL = 2 * membershipLeftTTL

// NewRedisMembership returns a [RedisMembership] on client.
func NewRedisMembership(client goredis.UniversalClient, opts RedisMembershipOptions) (*RedisMembership, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	return &RedisMembership{client: client, prefix: prefix, log: logger}, nil
}

func (m *RedisMembership) userRoomsKey(userID string) string {
	return userKey(m.prefix, userID, "rooms")
}
func (m *RedisMembership) userClockKey(userID string) string {
	return userKey(m.prefix, userID, "clock")
}
func (m *RedisMembership) membersKey(room string) string { return roomKey(m.prefix, room, "members") }
func (m *RedisMembership) leftKey(room string) string    { return roomKey(m.prefix, room, "left") }

// The operations of the membership scripts.
const (
	membershipJoin  = "join"
	membershipLeave = "leave"
)

// membershipUserScript is the user side of a join (ARGV[2] "join") or
// leave: it adds or removes the room ARGV[1] in the set KEYS[1] and
// returns {1, version}, the version being the clock KEYS[2] advanced; a
// join of a new room when the user is in ARGV[3] rooms already changes
// nothing and returns {-1, ""}. A user left without rooms keeps the clock
// ARGV[4] milliseconds.
var membershipUserScript = goredis.NewScript(`
if ARGV[2] == 'join' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return {-1, ''}
  end
  redis.call('SADD', KEYS[1], ARGV[1])
elseif ARGV[2] == 'leave' then
  redis.call('SREM', KEYS[1], ARGV[1])
end
local t = redis.call('TIME')
local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if v <= last then v = last + 1 end
v = string.format('%.0f', v)
redis.call('SET', KEYS[2], v)
if redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {1, v}
`)

// membershipRoomScript is the room side: it makes ARGV[1] a member of the
// hash KEYS[1] (ARGV[2] "join") or no member, remembering the leave in the
// sorted set KEYS[2], as of version ARGV[3]. It returns -1 and changes
// nothing when it applied a newer version of that user already; else 1
// when the membership changed, 2 when it changed and the room got its
// first member or lost its last, 0 when it stood. It forgets leaves older
// than ARGV[4] microseconds, and the whole set after ARGV[4] without a
// leave.
var membershipRoomScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[3]) then
  return -1
end
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000000 + tonumber(t[2]) - tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', cutoff))
if ARGV[2] == 'join' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  if redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) == 0 then return 0 end
  if redis.call('HLEN', KEYS[1]) == 1 then return 2 end
  return 1
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.floor(tonumber(ARGV[4]) / 1000))
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HLEN', KEYS[1]) == 0 then return 2 end
return 1
`)

// userStep runs the user side of op and returns the version to apply on
// the room side; it returns [rooms.ErrTooManyRooms] for a join over
// maxRooms.
func (m *RedisMembership) userStep(ctx context.Context, op, userID, room string, maxRooms int) (string, error) {
	res, err := membershipUserScript.Run(ctx, m.client,
		[]string{m.userRoomsKey(userID), m.userClockKey(userID)},
		room, op, maxRooms, membershipIdleClockTTL.Milliseconds()).Slice()
	if err != nil {
		return "", err
	}
	if len(res) != 2 {
		return "", fmt.Errorf("redis: membership script answered %v", res)
	}
	if n, _ := res[0].(int64); n == -1 {
		return "", rooms.ErrTooManyRooms
	}
	v, ok := res[1].(string)
	if !ok || v == "" {
		return "", fmt.Errorf("redis: membership script answered version %v", res[1])
	}
	return v, nil
}

// roomStep applies op at version on the room side.
func (m *RedisMembership) roomStep(ctx context.Context, op, userID, room, version string) (rooms.Change, error) {
	n, err := membershipRoomScript.Run(ctx, m.client,
		[]string{m.membersKey(room), m.leftKey(room)},
		userID, op, version, membershipLeftTTL.Microseconds()).Int()
	if err != nil {
		return rooms.Change{}, err
	}
	return rooms.Change{Member: n >= 1, Room: n == 2}, nil
}

// change runs both steps of op.
func (m *RedisMembership) change(ctx context.Context, op, userID, room string, maxRooms int) (rooms.Change, error) {
	v, err := m.userStep(ctx, op, userID, room, maxRooms)
	if err != nil {
		return rooms.Change{}, err
	}
	c, err := m.roomStep(ctx, op, userID, room, v)
	if err != nil {
		return rooms.Change{}, fmt.Errorf("redis: %s of room %q stored for the user but not yet for the room (a retry completes it): %w", op, room, err)
	}
	return c, nil
}

// Join implements [rooms.Membership]. It is atomic across instances where
// it matters: two concurrent joins cannot take a user past maxRooms.
func (m *RedisMembership) Join(ctx context.Context, userID, room string, maxRooms int) (bool, error) {
	c, err := m.JoinCounted(ctx, userID, room, maxRooms)
	return c.Member, err
}

// JoinCounted implements [rooms.RoomCounting]: the room-side script that
// adds the member also counts the room's members, so that one join in the
// cluster reports the room's first member.
func (m *RedisMembership) JoinCounted(ctx context.Context, userID, room string, maxRooms int) (rooms.Change, error) {
	return m.change(ctx, membershipJoin, userID, room, maxRooms)
}

// Leave implements [rooms.Membership].
func (m *RedisMembership) Leave(ctx context.Context, userID, room string) (bool, error) {
	c, err := m.LeaveCounted(ctx, userID, room)
	return c.Member, err
}

// LeaveCounted implements [rooms.RoomCounting].
func (m *RedisMembership) LeaveCounted(ctx context.Context, userID, room string) (rooms.Change, error) {
	return m.change(ctx, membershipLeave, userID, room, 0)
}

// Rooms implements [rooms.Membership] from the user side.
func (m *RedisMembership) Rooms(ctx context.Context, userID string) ([]string, error) {
	out, err := m.client.SMembers(ctx, m.userRoomsKey(userID)).Result()
	return sortedList(out, err)
}

// IsMember implements [rooms.Membership] from the room side, which the
// message path checks too.
func (m *RedisMembership) IsMember(ctx context.Context, userID, room string) (bool, error) {
	return m.client.HExists(ctx, m.membersKey(room), userID).Result()
}

// Members implements [rooms.Membership] from the room side.
func (m *RedisMembership) Members(ctx context.Context, room string) ([]string, error) {
	out, err := m.client.HKeys(ctx, m.membersKey(room)).Result()
	return sortedList(out, err)
}

// sortedList sorts a list Redis returned, and makes a missing key's nil an
// empty (non-nil) slice.
func sortedList(out []string, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out, nil
}
