package sioadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/socketio/fanout"
)

// StoredBroadcastLua ends a Redis script that writes something and then
// broadcasts it, so that a message is stored, recorded for recovery and
// published in one round trip (see StoredBroadcast). The store's part runs
// first: it sets the Lua local id (the stored message's id, at most 255
// bytes) or returns early, with anything but a table whose first element is
// 'stored', for outcomes that broadcast nothing. The store's part owns every
// key but the last and every argument but the last five; this end takes
// those: KEYS[#KEYS] the recovery stream, and ARGV the stream's approximate
// cap (0: none), the record ("": not recorded), the channel, the message,
// the smallest stream id to keep ("": no trim). Both the record and the
// message are msgpack maps that lack the value of their last key (the id);
// the message, when recorded, also lacks its recovery offset (key and
// value). It returns {'stored', id, offset} where offset is "" when not
// recorded, or {'stored', id, '0-0', error} when the stream refused the
// entry, after publishing with '0-0' as the offset.
const StoredBroadcastLua = `
local sb_nk, sb_na = #KEYS, #ARGV - 5
local sb_id = string.char(0xd9, #id) .. id
local sb_msg = ARGV[sb_na + 4] .. sb_id
local sb_off = ''
local sb_err
if ARGV[sb_na + 2] ~= '' then
  local r
  if ARGV[sb_na + 1] == '0' then
    r = redis.pcall('XADD', KEYS[sb_nk], '*', 'p', ARGV[sb_na + 2] .. sb_id)
  else
    r = redis.pcall('XADD', KEYS[sb_nk], 'MAXLEN', '~', ARGV[sb_na + 1], '*', 'p', ARGV[sb_na + 2] .. sb_id)
  end
  if type(r) == 'table' and r.err then
    sb_err = r.err
    r = '` + unrecordedOffset + `'
  elseif ARGV[sb_na + 5] ~= '' then
    redis.pcall('XTRIM', KEYS[sb_nk], 'MINID', '~', ARGV[sb_na + 5])
  end
  sb_off = r
  sb_msg = sb_msg .. '\161z' .. string.char(0xd9, #r) .. r
end
redis.call('PUBLISH', ARGV[sb_na + 3], sb_msg)
if sb_err then
  return {'stored', id, sb_off, sb_err}
end
return {'stored', id, sb_off}
`

// storedAnswer is the first element of StoredBroadcastLua's answer.
const storedAnswer = "stored"

// StoredBroadcast is a broadcast of an event whose content depends on a
// write in Redis: one of its arguments is a map whose "id" only the write
// gives (a chat message and its history id). Rather than one round trip to
// write and another to record and publish, a store runs its write and the
// broadcast as one script (Run): its own Lua followed by StoredBroadcastLua.
// Every instance fills in the id itself (wireMessage.ID), and so does a
// session restored from the recovery stream (wireRecord.ID).
//
// It exists on one Redis server only (not Redis Cluster, where the stream
// and the message's keys are on different masters), while every live
// instance understands wireMessage.ID (featureStoredID).
type StoredBroadcast struct {
	a        *RedisAdapter
	data     []any // the event's arguments, without the offset
	idArg    int   // data[idArg] is the map that gets the id
	opts     *socket.BroadcastOptions
	record   bool
	onStored func(id string)
	args     []any // the end's five arguments
}

// PrepareStored prepares the broadcast of the event arguments data (data[0]
// the event name) to opts, where data[idArg] is a map whose "id" the
// store's script gives. onStored, if not nil, is called with the id once
// the script has stored and published, before the local sockets get the
// event. It returns a *StoredBroadcast, as an any for the store's
// rooms.Deliverer (package server's, which knows no adapter type), or nil
// when the broadcast cannot run inside a script: then the caller writes,
// and broadcasts the usual way (Broadcast).
func (a *RedisAdapter) PrepareStored(data []any, idArg int, opts *socket.BroadcastOptions, onStored func(id string)) any {
	b := a.b
	if !b.rec.oneServer || !b.nodes.storedOK.Load() || !b.redisOK.Load() || b.closed.Load() {
		return nil
	}
	if _, ok := argMap(data, idArg); !ok || idArg > 255 {
		return nil
	}
	opts = adapterNormalizeOpts(opts)
	if opts.Flags.Volatile || opts.Flags.Local {
		return nil
	}
	plain, err := wirePlainArgs(data)
	if err != nil {
		return nil // Broadcast reports it
	}
	if _, ok := argMap(plain, idArg); !ok {
		return nil
	}
	recoverOn, maxAgeMs := a.recovery()
	msg, err := encodeWire(&wireMessage{
		Kind: kindBroadcast, From: b.id, Nsp: a.name, PacketType: uint8(parser.EVENT), Data: plain, Opts: optsToWire(opts),
		IDArg: uint8(idArg), //nolint:gosec // checked above
	})
	if err == nil {
		msg, err = extendWireMap(msg, "i") // ID's key
	}
	if err == nil && recoverOn {
		msg, err = growWireMap(msg) // for Offset, after the ID's value
	}
	if err != nil {
		return nil
	}
	var record []byte
	if recoverOn {
		record, err = encodeWire(&wireRecord{
			Nsp: a.name, Data: plain, Rooms: roomsToStrings(opts.Rooms), Except: roomsToStrings(opts.Except),
			IDArg: uint8(idArg), //nolint:gosec // checked above
		})
		if err == nil {
			record, err = extendWireMap(record, "i")
		}
		if err != nil {
			return nil
		}
	}
	minID := ""
	if recoverOn {
		minID, _ = a.trimDue(time.Duration(maxAgeMs) * time.Millisecond)
	}
	return &StoredBroadcast{
		a: a, data: plain, idArg: idArg, opts: opts, record: recoverOn, onStored: onStored,
		args: []any{b.opts.RecoveryStreamLength, record, a.channelFor(opts), msg, minID},
	}
}

// UsesClient reports whether the broadcast's script would run on client,
// the Redis client the store's keys are on.
func (s *StoredBroadcast) UsesClient(client goredis.UniversalClient) bool {
	return s != nil && s.a.b.client == client
}

// Run runs a script made of lua, the store's part, followed by
// StoredBroadcastLua, with the store's keys and args followed by the
// broadcast's, in the order of the instance's other messages to Redis (in
// the publish loop, batched with those ready at the same time), and
// returns its answer. When that answer
// is 'stored', the local sockets have the event, with the id in place and
// the recovery offset as its last argument. An error means the script did
// not run (a full queue, a timeout in the queue, a closed adapter, a Redis
// error), or that its outcome is unknown: the reply was lost, and the write
// and the other instances' delivery may have happened while this
// instance's sockets did not get the event.
func (s *StoredBroadcast) Run(ctx context.Context, lua string, keys []string, args []any) ([]any, error) {
	b := s.a.b
	script := storedScript(lua)
	keys = append(append(make([]string, 0, len(keys)+1), keys...), b.rec.streamKey)
	args = append(append(make([]any, 0, len(args)+len(s.args)), args...), s.args...)
	vals, err := s.run(ctx, &recordJob{script: script, keys: keys, args: args})
	if goredis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis restarted or flushed its scripts: EVALSHA ran nothing. The
		// text goes once, and Redis keeps it for the next ones. (Later
		// messages of the batch went out meanwhile, but none of this
		// sender's: it waits for this answer before sending more.)
		vals, err = s.run(ctx, &recordJob{script: script, keys: keys, args: args, eval: true})
	}
	return vals, err
}

// run is one attempt of Run.
func (s *StoredBroadcast) run(ctx context.Context, job *recordJob) ([]any, error) {
	b := s.a.b
	job.done = make(chan recordResult, 1)
	if b.closed.Load() {
		return nil, ErrAdapterClosed
	}
	if !b.pub.enqueue(adapterOutgoing{kind: kindBroadcast, record: job}) {
		// Not counted as a failed publish: nothing was stored, and the
		// caller tells the sender, so no instance misses anything.
		return nil, errors.New("redis: adapter publish queue is full")
	}
	wait := time.NewTimer(b.opts.PublishTimeout)
	defer wait.Stop()
	var res recordResult
	select {
	case res = <-job.done:
	case <-ctx.Done():
		res = s.abandon(job, ctx.Err())
	case <-wait.C:
		res = s.abandon(job, errors.New("redis: the store-and-publish script timed out in the publish queue"))
	}
	if res.err != nil {
		return nil, res.err
	}
	if len(res.vals) < 3 {
		return res.vals, nil
	}
	if answer, _ := res.vals[0].(string); answer != storedAnswer {
		return res.vals, nil
	}
	id, _ := res.vals[1].(string)
	offset, _ := res.vals[2].(string)
	s.delivered(id, offset, res.vals)
	return res.vals, nil
}

// storedScripts holds the scripts of StoredBroadcast.Run by the store's
// Lua: a few, made once each (a Script hashes its text).
var storedScripts sync.Map // string -> *goredis.Script

func storedScript(lua string) *goredis.Script {
	if s, ok := storedScripts.Load(lua); ok {
		return s.(*goredis.Script) //nolint:forcetypeassert // only scripts are stored
	}
	s, _ := storedScripts.LoadOrStore(lua, goredis.NewScript(lua+StoredBroadcastLua))
	return s.(*goredis.Script) //nolint:forcetypeassert // only scripts are stored
}

// abandon gives up waiting for job: if the publish loop has not sent it, it
// never will; if it has, the answer is near (the batch has its own
// timeout), and waiting for it keeps this instance's sockets in step with
// the others.
func (s *StoredBroadcast) abandon(job *recordJob, why error) recordResult {
	if job.state.CompareAndSwap(jobQueued, jobAbandoned) {
		return recordResult{err: why}
	}
	return <-job.done
}

// delivered counts the stored broadcast and gives it to the local sockets.
func (s *StoredBroadcast) delivered(id, offset string, vals []any) {
	a, b := s.a, s.a.b
	b.published(kindBroadcast)
	if s.record {
		if len(vals) > 3 {
			b.stats.recordErrors.Add(1)
			b.logLimited("record", slog.LevelWarn, "adapter: packet not recorded for recovery", "err", fmt.Sprint(vals[3]))
		} else {
			if ms, ok := streamIDMillis(offset); ok {
				a.lastRecordMs.Store(ms)
			}
			b.stats.recorded.Add(1)
		}
	}
	if s.onStored != nil {
		s.onStored(id)
	}
	data := s.data
	setArgID(data, s.idArg, id)
	if s.record {
		data = append(data, offset)
	}
	fanout.Local(a, &parser.Packet{Type: parser.EVENT, Data: data}, s.opts)
}

// setArgID sets the key "id" of the map data[idArg], as a stored broadcast
// carries it (wireMessage.ID, wireRecord.ID). It reports false when there
// is no such map.
func setArgID(data []any, idArg int, id string) bool {
	m, ok := argMap(data, idArg)
	if ok {
		m["id"] = id
	}
	return ok
}

// argMap returns data[idArg] when it is a map, and not the event name.
func argMap(data []any, idArg int) (map[string]any, bool) {
	if idArg <= 0 || idArg >= len(data) {
		return nil, false
	}
	m, ok := data[idArg].(map[string]any)
	return m, ok
}

// The states of a recordJob that carries a store's script: queued until
// the publish loop sends it, or abandoned by its waiter first.
const (
	jobQueued int32 = iota
	jobSent
	jobAbandoned
)

// take reports whether the publish loop may send job: always for a record
// job of Broadcast, and for a stored one unless its waiter gave up.
func (j *recordJob) take() bool {
	return j.script == nil || j.state.CompareAndSwap(jobQueued, jobSent)
}
