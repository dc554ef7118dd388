package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/chatd/chatd/rooms"
	goredis "github.com/redis/go-redis/v9"
)

var _ rooms.History = (*RedisHistory)(nil)

// DefaultHistorySize is the number of messages a [RedisHistory] keeps per
// room when none is configured; it is the default of `history.size`.
const DefaultHistorySize = 1000

// RedisHistoryOptions configures a [RedisHistory].
type RedisHistoryOptions struct {
	// Prefix starts every key; empty means [DefaultStorePrefix]. It may not
	// contain '{' or '}'.
	Prefix string
	// Logger receives the store's diagnostics; nil discards them.
	Logger *slog.Logger
	// Size is the number of messages kept per room; 0 means
	// [DefaultHistorySize].
	Size int
	// TTL is how long a room's history lives after its last message (the
	// stream key's expiry, renewed by each append); 0 keeps it forever.
	TTL time.Duration
}

// RedisHistory is the [rooms.History] of a cluster: one Redis stream per
// room, "<prefix>:{r:<room>}:history", capped at exactly Size entries: Append
// adds an entry and deletes the oldest beyond Size in one script. Message
// ids are the stream ids that Redis assigns, so they grow within a room
// across all instances. Each entry holds the message as JSON in its field
// "m". Page reports gaps exactly on Redis 7.0 or later (XINFO STREAM
// max-deleted-entry-id, the newest deleted id); before 7.0 it reports a gap
// whenever an After id is older than a full room's oldest message.
type RedisHistory struct {
	client goredis.UniversalClient
	prefix string
	size   int
	ttl    time.Duration // 0: no expiry
	log    *slog.Logger
}

// NewRedisHistory returns a [RedisHistory] on client.
func NewRedisHistory(client goredis.UniversalClient, opts RedisHistoryOptions) (*RedisHistory, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	size := opts.Size
	if size == 0 {
		size = DefaultHistorySize
	}
	if size < 1 {
		return nil, fmt.Errorf("redis: history size %d must be at least 1 (messages kept per room)", size)
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("cluster: history TTL %v must not be negative", opts.TTL)
	}
	return &RedisHistory{client: client, prefix: prefix, size: size, ttl: opts.TTL, log: logger}, nil
}

func (h *RedisHistory) key(room string) string { return roomKey(h.prefix, room, "history") }

// historyField is the stream entry field that holds a message's JSON.
const historyField = "m"

// historyTrimLua deletes the oldest entries of the stream KEYS[n] beyond
// ARGV[size]; the scripts below fill in n and size. It deletes with XDEL
// rather than trimming with XADD MAXLEN because XDEL records the newest
// deleted id (XINFO STREAM max-deleted-entry-id), which tells Page whether
// an After query skipped dropped messages.
const historyTrimLua = `
local over = redis.call('XLEN', KEYS[%[1]d]) - tonumber(ARGV[%[2]d])
if over > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[%[1]d], '-', '+', 'COUNT', over)) do
    redis.call('XDEL', KEYS[%[1]d], e[1])
  end
end
`

// historyAppendScript adds ARGV[1] to the stream KEYS[1] and deletes its
// oldest entries beyond ARGV[2]; it returns the new entry's id.
var historyAppendScript = goredis.NewScript(`
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])` +
	fmt.Sprintf(historyTrimLua, 1, 2) + fmt.Sprintf(historyExpireLua, 1, 3) + `
return id
`)

// historyMemberAppendScript does what historyAppendScript does to the stream
// KEYS[2], with ARGV[2] and ARGV[3], when ARGV[1] is a field of the hash
// KEYS[1] (the room's members); otherwise it stores nothing and returns
// nil.
var historyMemberAppendScript = goredis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])` +
	fmt.Sprintf(historyTrimLua, 2, 3) + fmt.Sprintf(historyExpireLua, 2, 4) + `
return id
`)

// Append implements [rooms.History]. The stored message's ID is the stream
// id Redis gave it; an ID already set on m is ignored.
func (h *RedisHistory) Append(ctx context.Context, m rooms.Message) (rooms.Message, error) {
	m.ID = ""
	body, err := json.Marshal(m)
	if err != nil {
		return rooms.Message{}, fmt.Errorf("redis: encode message: %w", err)
	}
	id, err := historyAppendScript.Run(ctx, h.client, []string{h.key(m.Room)}, body, h.size, h.ttl.Milliseconds()).Text()
	if err != nil {
		return rooms.Message{}, err
	}
	m.ID = id
	return m, nil
}

var (
	_ rooms.MemberHistory = (*RedisMemberHistory)(nil)
	_ rooms.SendStore     = (*RedisMemberHistory)(nil)
)

// RedisMemberHistory is a [RedisHistory] that also does the rest of a send
// in the script of its append ([rooms.SendStore]): the check that the
// sender is a member of the room, and with a clientMsgId the lookup of an
// earlier send and the record of this one. The room's members, its stream
// and the records of sends to it share the room's hash tag, so a message
// costs one Redis round trip on one server and on Redis Cluster alike.
type RedisMemberHistory struct {
	*RedisHistory
	members *RedisMembership
	idem    *RedisIdempotency
}

// NewRedisMemberHistory returns a [RedisMemberHistory] on the stores h,
// members and idem, which must share one client.
func NewRedisMemberHistory(h *RedisHistory, members *RedisMembership, idem *RedisIdempotency) (*RedisMemberHistory, error) {
	if h == nil || members == nil || idem == nil {
		return nil, errors.New("redis: a member history needs a history, a membership and an idempotency store")
	}
	if h.client != members.client || h.client != idem.client {
		return nil, errors.New("redis: a member history's stores must share one Redis client")
	}
	return &RedisMemberHistory{RedisHistory: h, members: members, idem: idem}, nil
}

// AppendIfMember implements [rooms.MemberHistory].
func (h *RedisMemberHistory) AppendIfMember(ctx context.Context, m rooms.Message) (rooms.Message, bool, error) {
	m.ID = ""
	body, err := json.Marshal(m)
	if err != nil {
		return rooms.Message{}, false, fmt.Errorf("redis: encode message: %w", err)
	}
	keys := []string{h.members.membersKey(m.Room), h.key(m.Room)}
	id, err := historyMemberAppendScript.Run(ctx, h.client, keys, m.UserID, body, h.size, h.ttl.Milliseconds()).Text()
	if errors.Is(err, goredis.Nil) {
		return rooms.Message{}, false, nil
	}
	if err != nil {
		return rooms.Message{}, false, err
	}
	m.ID = id
	return m, true, nil
}

// sendLua is a whole send on one room's slot, once the Lua local idem is
// set. KEYS: the room's members (hash), its stream, and idem: with a
// clientMsgId the send's idempotency record, nil otherwise. ARGV: the
// sender's user id, "1" to refuse a non-member, the message's JSON, the
// history size and TTL (ms), the record's JSON after its empty id, the
// record's TTL (ms), the value of a claimed record. It returns
// {"notmember"}, {"pending"} or {"prior", record[, message JSON from
// history]}, or it leaves the new entry's id in the local id for what
// follows.
var sendLua = `
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return {'notmember'}
end
if idem then
  local rec = redis.call('GET', idem)
  if rec == ARGV[8] then return {'pending'} end
  if rec then
    local id = string.match(rec, '^{"id":"([0-9]+%-[0-9]+)"')
    if id then
      local e = redis.call('XRANGE', KEYS[2], id, id)
      if e[1] then
        local f = e[1][2]
        for i = 1, #f, 2 do
          if f[i] == 'm' then return {'prior', rec, f[i + 1]} end
        end
      end
    end
    return {'prior', rec}
  end
end
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[3])` +
	fmt.Sprintf(historyTrimLua, 2, 4) + fmt.Sprintf(historyExpireLua, 2, 5) + `
if idem then
  redis.call('SET', idem, '{"id":"' .. id .. '"' .. ARGV[6], 'PX', ARGV[7])
end
`

// sendScript is sendLua alone: KEYS[3], when given, is the idempotency
// record. Besides sendLua's answers it returns {"stored", id}.
var sendScript = goredis.NewScript(`local idem = KEYS[3]` + sendLua + `return {'stored', id}`)

// sendPublishLua is sendLua for a script that then broadcasts the stored
// message to its room (sioadapter.StoredBroadcast.Run), whose part takes
// the last key: the idempotency record is KEYS[3] when there are four. Its
// answer for a stored message is {"stored", id, ...}.
var sendPublishLua = `local idem
if #KEYS == 4 then idem = KEYS[3] end` + sendLua

// sendRecordHead is how the JSON of a message with an empty id starts; the
// send script puts the stream id in its place.
const sendRecordHead = `{"id":""`

// StoreSend implements [rooms.SendStore] in one script.
func (h *RedisMemberHistory) StoreSend(ctx context.Context, m rooms.Message, step rooms.SendStep) (rooms.SendResult, error) {
	m.ID = ""
	body, err := json.Marshal(m)
	if err != nil {
		return rooms.SendResult{}, fmt.Errorf("redis: encode message: %w", err)
	}
	// The record keeps everything but the text, which history has.
	record := m
	record.Text = ""
	recJSON, err := json.Marshal(record)
	if err != nil {
		return rooms.SendResult{}, fmt.Errorf("redis: encode message: %w", err)
	}
	if !bytes.HasPrefix(recJSON, []byte(sendRecordHead)) {
		return rooms.SendResult{}, fmt.Errorf("redis: a message's JSON starts %.20q, not with its id", recJSON)
	}
	keys := []string{h.members.membersKey(m.Room), h.key(m.Room)}
	if step.Key != "" {
		keys = append(keys, h.idem.key(step.Key))
	}
	memberOnly := "0"
	if step.MemberOnly {
		memberOnly = "1"
	}
	args := []any{m.UserID, memberOnly, body, h.size, h.ttl.Milliseconds(),
		recJSON[len(sendRecordHead):], h.idem.ttl.Milliseconds(), idempotencyPending}
	var res []string
	delivered := false
	if sb := h.storedBroadcast(m, step); sb != nil {
		vals, err := sb.Run(ctx, sendPublishLua, keys, args)
		if err != nil {
			return rooms.SendResult{}, err
		}
		res = make([]string, len(vals))
		for i, v := range vals {
			res[i], _ = v.(string)
		}
		// The broadcast's {"stored", id, offset[, error]}.
		if len(res) >= 3 && res[0] == "stored" {
			res, delivered = res[:2], true
		}
	} else {
		res, err = sendScript.Run(ctx, h.client, keys, args...).StringSlice()
		if err != nil {
			return rooms.SendResult{}, err
		}
	}
	switch {
	case len(res) == 1 && res[0] == "notmember":
		return rooms.SendResult{Outcome: rooms.SendNotMember}, nil
	case len(res) == 1 && res[0] == "pending":
		return rooms.SendResult{Outcome: rooms.SendPending}, nil
	case len(res) == 2 && res[0] == "stored":
		m.ID = res[1]
		return rooms.SendResult{Outcome: rooms.SendStored, Message: m, Delivered: delivered}, nil
	case len(res) >= 2 && res[0] == "prior":
		var prior rooms.Message
		if err := json.Unmarshal([]byte(res[1]), &prior); err != nil {
			return rooms.SendResult{}, fmt.Errorf("redis: idempotency record %q is not a message: %w", h.idem.key(step.Key), err)
		}
		if len(res) == 3 {
			var stored rooms.Message
			if err := json.Unmarshal([]byte(res[2]), &stored); err != nil {
				return rooms.SendResult{}, fmt.Errorf("redis: history of room %q: entry %s: %w", m.Room, prior.ID, err)
			}
			stored.ID = prior.ID
			prior = stored
		}
		return rooms.SendResult{Outcome: rooms.SendPrior, Message: prior}, nil
	}
	return rooms.SendResult{}, fmt.Errorf("redis: send script answered %q", res)
}

// scriptBroadcast is a broadcast that runs in the script of the write it
// depends on: sioadapter.StoredBroadcast, the Redis adapter's. Run runs
// the store's Lua followed by the broadcast's.
type scriptBroadcast interface {
	UsesClient(client goredis.UniversalClient) bool
	Run(ctx context.Context, lua string, keys []string, args []any) ([]any, error)
}

// storedBroadcast is the delivery that step offers to run with the send, or
// nil when there is none this store can run: the Redis adapter's, on this
// store's Redis client.
func (h *RedisMemberHistory) storedBroadcast(m rooms.Message, step rooms.SendStep) scriptBroadcast {
	if step.Deliver == nil {
		return nil
	}
	sb, ok := step.Deliver.PrepareDelivery(m).(scriptBroadcast)
	if !ok || !sb.UsesClient(h.client) {
		return nil
	}
	return sb
}

// Page implements [rooms.History].
func (h *RedisHistory) Page(ctx context.Context, room string, q rooms.Query) (rooms.Page, error) {
	limit := int64(q.Limit)
	if limit < 1 {
		limit = rooms.DefaultHistoryLimit
	}
	limit = min(limit, rooms.MaxHistoryLimit)
	key := h.key(room)
	switch {
	case q.After != "":
		after, ok := rooms.ParseID(q.After)
		if !ok {
			return rooms.Page{}, rooms.Errorf(rooms.CodeBadRequest, "after must be a message id such as \"1700000000000-0\"")
		}
		return h.pageAfter(ctx, room, key, after, limit)
	case q.Before != "":
		before, ok := rooms.ParseID(q.Before)
		if !ok {
			return rooms.Page{}, rooms.Errorf(rooms.CodeBadRequest, "before must be a message id such as \"1700000000000-0\"")
		}
		if before == (rooms.MessageID{}) {
			// Nothing is older than 0-0, and Redis refuses "(0-0" as an end.
			return rooms.Page{Messages: []rooms.Message{}}, nil
		}
		entries, err := h.client.XRevRangeN(ctx, key, "("+before.String(), "-", limit).Result()
		if err != nil {
			return rooms.Page{}, err
		}
		slices.Reverse(entries)
		return h.page(room, entries, false)
	default:
		entries, err := h.client.XRevRangeN(ctx, key, "+", "-", limit).Result()
		if err != nil {
			return rooms.Page{}, err
		}
		slices.Reverse(entries)
		return h.page(room, entries, false)
	}
}

// pageAfter answers an After query: the entries after id and, read in the
// same transaction, whether an entry newer than id was dropped.
func (h *RedisHistory) pageAfter(ctx context.Context, room, key string, after rooms.MessageID, limit int64) (rooms.Page, error) {
	if after == (rooms.MessageID{MS: math.MaxUint64, Seq: math.MaxUint64}) {
		// Nothing is newer, and Redis refuses to step past the largest id.
		return rooms.Page{Messages: []rooms.Message{}}, nil
	}
	var entries *goredis.XMessageSliceCmd
	var info *goredis.XInfoStreamCmd
	_, err := h.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		entries = p.XRangeN(ctx, key, "("+after.String(), "+", limit)
		info = p.XInfoStream(ctx, key)
		return nil
	})
	if entries.Err() != nil {
		return rooms.Page{}, entries.Err()
	}
	list := entries.Val()
	if len(list) == 0 {
		// A missing stream makes XINFO fail; with nothing newer than after
		// nothing newer was dropped either.
		return rooms.Page{Messages: []rooms.Message{}}, nil
	}
	if err != nil {
		return rooms.Page{}, err
	}
	if info.Err() != nil || info.Val() == nil {
		return rooms.Page{}, fmt.Errorf("redis: XINFO STREAM %s: %w", key, info.Err())
	}
	gap, err := historyGap(after, *info.Val(), list[0].ID, h.size)
	if err != nil {
		return rooms.Page{}, err
	}
	return h.page(room, list, gap)
}

// historyGap reports whether messages newer than after were dropped: after
// is older than the newest deleted id. Before Redis 7.0 XINFO lacks
// that id; then a gap is assumed when after is older than the first entry
// returned and the stream is full (size entries).
func historyGap(after rooms.MessageID, info goredis.XInfoStream, first string, size int) (bool, error) {
	if info.MaxDeletedEntryID == "" {
		firstID, ok := rooms.ParseID(first)
		if !ok {
			return false, fmt.Errorf("redis: history entry has id %q, not <ms>-<seq>", first)
		}
		return after.Less(firstID) && info.Length >= int64(size), nil
	}
	dropped, ok := rooms.ParseID(info.MaxDeletedEntryID)
	if !ok {
		return false, fmt.Errorf("redis: XINFO STREAM max-deleted-entry-id %q is not <ms>-<seq>", info.MaxDeletedEntryID)
	}
	return after.Less(dropped), nil
}

// page decodes stream entries (oldest first) into a page of room.
func (h *RedisHistory) page(room string, entries []goredis.XMessage, gap bool) (rooms.Page, error) {
	out := make([]rooms.Message, 0, len(entries))
	for _, e := range entries {
		m, err := decodeHistoryEntry(e)
		if err != nil {
			return rooms.Page{}, fmt.Errorf("redis: history of room %q: %w", room, err)
		}
		out = append(out, m)
	}
	return rooms.Page{Messages: out, Gap: gap}, nil
}

func decodeHistoryEntry(e goredis.XMessage) (rooms.Message, error) {
	raw, ok := e.Values[historyField].(string)
	if !ok {
		return rooms.Message{}, fmt.Errorf("entry %s has no field %q", e.ID, historyField)
	}
	var m rooms.Message
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return rooms.Message{}, fmt.Errorf("entry %s: %w", e.ID, err)
	}
	m.ID = e.ID
	return m, nil
}
