package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/chatd/chatd/rooms"
	"github.com/redis/go-redis/v9"
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
}

// RedisHistory is the [rooms.History] of a cluster: one Redis stream per
// room, "<prefix>:history:<room>", capped at exactly Size entries: Append
// adds an entry and deletes the oldest beyond Size in one script. Message
// ids are the stream ids that Redis assigns, so they grow within a room
// across all instances. Each entry holds the message as JSON in its field
// "m". Page reports gaps exactly on Redis 7.0 or later (XINFO STREAM
// max-deleted-entry-id, the newest deleted id); before 7.0 it reports a gap
// whenever an After id is older than a full room's oldest message.
type RedisHistory struct {
	client redis.UniversalClient
	keys   string // "<prefix>:history:"
	size   int
	log    *slog.Logger
}

// NewRedisHistory returns a [RedisHistory] on client.
func NewRedisHistory(client redis.UniversalClient, opts RedisHistoryOptions) (*RedisHistory, error) {
	prefix, logger, err := storeSetup(client, opts.Prefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	size := opts.Size
	if size == 0 {
		size = DefaultHistorySize
	}
	if size < 1 {
		return nil, fmt.Errorf("cluster: history size %d must be at least 1 (messages kept per room)", size)
	}
	return &RedisHistory{client: client, keys: prefix + ":history:", size: size, log: logger}, nil
}

func (h *RedisHistory) key(room string) string { return h.keys + room }

// historyField is the stream entry field that holds a message's JSON.
const historyField = "m"

// historyAppendScript adds ARGV[1] to the stream KEYS[1] and deletes its
// oldest entries beyond ARGV[2]; it returns the new entry's id. It deletes
// with XDEL rather than trimming with XADD MAXLEN because XDEL records the
// newest deleted id (XINFO STREAM max-deleted-entry-id), which tells Page
// whether an After query skipped dropped messages.
var historyAppendScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
local over = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if over > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)) do
    redis.call('XDEL', KEYS[1], e[1])
  end
end
return id
`)

// Append implements [rooms.History]. The stored message's ID is the stream
// id Redis gave it; an ID already set on m is ignored.
func (h *RedisHistory) Append(ctx context.Context, m rooms.Message) (rooms.Message, error) {
	m.ID = ""
	body, err := json.Marshal(m)
	if err != nil {
		return rooms.Message{}, fmt.Errorf("cluster: encode message: %w", err)
	}
	id, err := historyAppendScript.Run(ctx, h.client, []string{h.key(m.Room)}, body, h.size).Text()
	if err != nil {
		return rooms.Message{}, err
	}
	m.ID = id
	return m, nil
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
	var entries *redis.XMessageSliceCmd
	var info *redis.XInfoStreamCmd
	_, err := h.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
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
		return rooms.Page{}, fmt.Errorf("cluster: XINFO STREAM %s: %w", key, info.Err())
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
func historyGap(after rooms.MessageID, info redis.XInfoStream, first string, size int) (bool, error) {
	if info.MaxDeletedEntryID == "" {
		firstID, ok := rooms.ParseID(first)
		if !ok {
			return false, fmt.Errorf("cluster: history entry has id %q, not <ms>-<seq>", first)
		}
		return after.Less(firstID) && info.Length >= int64(size), nil
	}
	dropped, ok := rooms.ParseID(info.MaxDeletedEntryID)
	if !ok {
		return false, fmt.Errorf("cluster: XINFO STREAM max-deleted-entry-id %q is not <ms>-<seq>", info.MaxDeletedEntryID)
	}
	return after.Less(dropped), nil
}

// page decodes stream entries (oldest first) into a page of room.
func (h *RedisHistory) page(room string, entries []redis.XMessage, gap bool) (rooms.Page, error) {
	out := make([]rooms.Message, 0, len(entries))
	for _, e := range entries {
		m, err := decodeHistoryEntry(e)
		if err != nil {
			return rooms.Page{}, fmt.Errorf("cluster: history of room %q: %w", room, err)
		}
		out = append(out, m)
	}
	return rooms.Page{Messages: out, Gap: gap}, nil
}

func decodeHistoryEntry(e redis.XMessage) (rooms.Message, error) {
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
