package sioadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// unrecordedOffset is the offset given to a packet that could not be added
// to the recovery stream (Redis unreachable). It is a well-formed stream id
// that no entry can have, so a client that reconnects with it gets a fresh
// session instead of a restore that silently lacks the packet.
const unrecordedOffset = "0-0"

// recoveryField is the stream entry field holding the msgpack record.
const recoveryField = "p"

// recoveryTrimInterval is how often, at most, an adapter trims the entries
// older than the maximum disconnection duration from the recovery stream.
const recoveryTrimInterval = time.Second

// record adds a broadcast packet to the recovery stream and returns its
// offset (the stream id), or unrecordedOffset when Redis is unreachable; it
// fails fast while Redis is known to be down. maxAge is the maximum
// disconnection duration: at most every recoveryTrimInterval, the same round
// trip also trims the entries older than that (XTRIM MINID ~), measured on
// Redis's clock by the id of the previous record, so that a quiet
// deployment does not keep packets no restore can use.
func (a *RedisAdapter) record(data []any, opts *socket.BroadcastOptions, maxAge time.Duration) string {
	b := a.b
	if !b.redisOK.Load() {
		b.stats.recordErrors.Add(1)
		return unrecordedOffset
	}
	rec := wireRecord{Nsp: a.name, Data: data, Rooms: roomsToStrings(opts.Rooms), Except: roomsToStrings(opts.Except)}
	if opts.Flags.Local {
		rec.Node = b.id
	}
	payload, err := encodeWire(&rec)
	if err != nil {
		b.stats.recordErrors.Add(1)
		b.logLimited("record-encode", slog.LevelError, "adapter: packet not recorded for recovery", "err", err)
		return unrecordedOffset
	}
	// Not b.ctx: packets broadcast while the server shuts down after the
	// builder closed are still worth recording.
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	args := &goredis.XAddArgs{
		Stream: b.rec.streamKey,
		MaxLen: b.opts.RecoveryStreamLength,
		Approx: true,
		Values: []any{recoveryField, payload},
	}
	var add *goredis.StringCmd
	if minID, ok := a.trimDue(maxAge); ok {
		pipe := b.client.Pipeline()
		add = pipe.XAdd(ctx, args)
		pipe.XTrimMinIDApprox(ctx, b.rec.streamKey, minID, 0)
		_, _ = pipe.Exec(ctx)
	} else {
		// Alone, not in a pipeline of one: go-redis's pipeline path costs
		// more CPU than a single command's.
		add = b.client.XAdd(ctx, args)
	}
	id, err := add.Result()
	b.noteRedis(err)
	if err != nil {
		b.stats.recordErrors.Add(1)
		b.logLimited("record", slog.LevelWarn, "adapter: packet not recorded for recovery", "err", err)
		return unrecordedOffset
	}
	if ms, ok := streamIDMillis(id); ok {
		a.lastRecordMs.Store(ms)
	}
	b.stats.recorded.Add(1)
	return id
}

// recordPublishScript adds a broadcast to the recovery stream and publishes
// it, in one round trip: the published message is ARGV[4], a msgpack map
// that lacks the value of its last key, followed by the new entry's id as
// that value (a msgpack str 8). KEYS[1]: the recovery stream. ARGV: the
// stream's approximate cap (0: none), the record, the channel, the message,
// the smallest id to keep ("": no trim). It returns {id}, or, when the
// stream refused the entry, {"0-0", error} after publishing with "0-0":
// the other instances get the broadcast either way, as they do when
// recording and publishing are two commands.
var recordPublishScript = goredis.NewScript(`
local r
if ARGV[1] == '0' then
  r = redis.pcall('XADD', KEYS[1], '*', 'p', ARGV[2])
else
  r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', ARGV[2])
end
local err
if type(r) == 'table' and r.err then
  err = r.err
  r = '` + unrecordedOffset + `'
elseif ARGV[5] ~= '' then
  redis.pcall('XTRIM', KEYS[1], 'MINID', '~', ARGV[5])
end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. string.char(0xd9, #r) .. r)
if err then
  return {r, err}
end
return {r}
`)

// recordAndPublish records a broadcast for recovery and publishes it to the
// other instances in one script, where one Redis server holds the stream
// and serves the channels (not on Redis Cluster: see publisher). The script
// runs in the publish loop, in order with the instance's other messages and
// in the same pipelined batch as those that are ready at the same time. It
// returns the packet's offset, which the receivers append to data
// themselves (wireMessage.Offset), and false when it could not be used;
// then the caller records and publishes the usual way.
func (a *RedisAdapter) recordAndPublish(data []any, packetType uint8, opts *socket.BroadcastOptions, maxAge time.Duration) (string, bool) {
	b := a.b
	if !b.rec.oneServer || !b.nodes.offsetOK.Load() || !b.redisOK.Load() || b.closed.Load() {
		return "", false
	}
	msg, err := encodeWireWithOffset(&wireMessage{
		Kind: kindBroadcast, From: b.id, Nsp: a.name, PacketType: packetType, Data: data, Opts: optsToWire(opts),
	})
	if err != nil {
		return "", false // the usual path reports it
	}
	rec := wireRecord{Nsp: a.name, Data: data, Rooms: roomsToStrings(opts.Rooms), Except: roomsToStrings(opts.Except)}
	payload, err := encodeWire(&rec)
	if err != nil {
		return "", false
	}
	minID, _ := a.trimDue(maxAge)
	job := &recordJob{
		args: []any{b.opts.RecoveryStreamLength, payload, a.channelFor(opts), msg, minID},
		done: make(chan recordResult, 1),
	}
	if !b.pub.enqueue(adapterOutgoing{kind: kindBroadcast, record: job}) {
		return "", false // the queue is full: the usual path drops and counts it
	}
	var res recordResult
	wait := time.NewTimer(b.opts.PublishTimeout)
	defer wait.Stop()
	select {
	case res = <-job.done:
	case <-b.ctx.Done():
		res.err = ErrAdapterClosed
	case <-wait.C:
		// Behind a backlog or a Redis that does not answer: the local
		// sockets get the packet now, without a usable offset.
		res.err = errors.New("redis: recording timed out in the publish queue")
	}
	select {
	case res = <-job.done: // it did finish
	default:
	}
	var refused goredis.Error
	if res.err != nil && errors.As(res.err, &refused) {
		// Redis answered the script with an error (it refuses writes, say):
		// nothing was published, so the usual path may still publish.
		b.logLimited("record-script", slog.LevelWarn, "adapter: record-and-publish script refused; publishing separately", "err", res.err)
		return "", false
	}
	if res.err == nil && res.recordErr != "" {
		res.err = errors.New(res.recordErr) // published with unrecordedOffset
	}
	if res.err != nil {
		// Published, or perhaps published before the reply was lost:
		// publishing again could deliver the packet twice. The local
		// sockets get it with an offset no restore accepts.
		b.stats.recordErrors.Add(1)
		b.logLimited("record", slog.LevelWarn, "adapter: packet not recorded for recovery", "err", res.err)
		return unrecordedOffset, true
	}
	if ms, ok := streamIDMillis(res.id); ok {
		a.lastRecordMs.Store(ms)
	}
	b.stats.recorded.Add(1)
	return res.id, true
}

// trimDue reports whether the recovery stream is due for trimming by age
// and returns the smallest id to keep: the Redis time of the previous
// record minus maxAge. A trim that lags behind is harmless: it keeps a few
// more entries, never fewer.
func (a *RedisAdapter) trimDue(maxAge time.Duration) (string, bool) {
	last := a.lastRecordMs.Load()
	if maxAge <= 0 || last == 0 {
		return "", false
	}
	now := time.Now().UnixMilli()
	prev := a.trimmedAt.Load()
	if now-prev < recoveryTrimInterval.Milliseconds() || !a.trimmedAt.CompareAndSwap(prev, now) {
		return "", false
	}
	keep := last - maxAge.Milliseconds()
	if keep <= 0 {
		return "", false
	}
	return strconv.FormatInt(keep, 10) + "-0", true
}

// streamIDMillis returns the milliseconds part of a stream id.
func streamIDMillis(id string) (int64, bool) {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	return n, err == nil
}

// recovery is where connection state recovery keeps its data in Redis:
// the stream of recoverable packets and the disconnected sessions. It does
// not change once the builder is made.
type recovery struct {
	streamKey   string // the stream of recoverable packets
	sessionKeys string // + pid: a disconnected socket's session
	// oneServer is set when one Redis server holds the recovery stream and
	// serves every channel (not Redis Cluster): a broadcast is then recorded
	// and published in one script (recordAndPublish).
	oneServer bool
}

func (r recovery) sessionKey(pid string) string { return r.sessionKeys + pid }

// PersistSession keeps a disconnected socket's id, rooms and data in Redis
// for the maximum disconnection duration, so that the client can resume it
// on any instance. Data is stored in its plain form (see wirePlain): a
// struct comes back as map[string]any.
func (a *RedisAdapter) PersistSession(s *socket.SessionToPersist) {
	on, maxMs := a.recovery()
	if s == nil || !on {
		return
	}
	b := a.b
	if !b.redisOK.Load() {
		// Fail fast: a mass disconnection while Redis is down must not wait
		// PublishTimeout per socket.
		b.logLimited("persist", slog.LevelWarn, "adapter: session not persisted, Redis unreachable")
		return
	}
	rec := wireSession{Nsp: a.name, Sid: string(s.Sid), Pid: string(s.Pid), Rooms: roomsToStrings(s.Rooms), Node: b.id}
	data, err := wirePlain(s.Data)
	if err != nil {
		b.logLimited("persist-data", slog.LevelError, "adapter: socket data cannot be persisted; the session resumes without it", "err", err)
	} else {
		rec.Data = data
	}
	payload, err := encodeWire(&rec)
	if err != nil {
		b.logLimited("persist-encode", slog.LevelError, "adapter: session not persisted", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	err = b.client.Set(ctx, b.rec.sessionKey(rec.Pid), payload, time.Duration(maxMs)*time.Millisecond).Err()
	b.noteRedis(err)
	if err != nil {
		b.logLimited("persist", slog.LevelWarn, "adapter: session not persisted", "err", err)
	}
}

// RestoreSession takes a persisted session (a session restores once) and
// the packets its socket missed since offset, on any instance. It returns
// nil, nil, meaning a fresh session, when the session is unknown or
// expired, when pid or offset are malformed, when the offset is no longer in
// the recovery stream (trimmed, or never recorded) and when more than
// RecoveryMaxPackets packets of the stream follow the offset. The offset is
// checked before the session is taken, so an attempt with a forged offset
// leaves the session to its owner.
func (a *RedisAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	on, _ := a.recovery()
	if !on || !validPid(string(pid)) || !validOffset(offset) {
		return nil, nil
	}
	b := a.b
	if !b.redisOK.Load() {
		// Fail fast: the client waits for its CONNECT meanwhile.
		return nil, errors.New("redis: restore session: Redis unreachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.RequestTimeout)
	defer cancel()
	at, err := b.client.XRangeN(ctx, b.rec.streamKey, offset, offset, 1).Result()
	b.noteRedis(err)
	if err != nil {
		return nil, fmt.Errorf("redis: restore session: reading the recovery stream: %w", err)
	}
	if len(at) != 1 || at[0].ID != offset {
		// The offset was trimmed from the stream or never was in it: the
		// packets missed cannot be known.
		return nil, nil
	}
	pipe := b.client.Pipeline()
	getSession := pipe.GetDel(ctx, b.rec.sessionKey(string(pid)))
	// The offset entry itself plus at most RecoveryMaxPackets+1 after it.
	readStream := pipe.XRangeN(ctx, b.rec.streamKey, offset, "+", int64(b.opts.RecoveryMaxPackets)+2)
	_, _ = pipe.Exec(ctx)

	raw, err := getSession.Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	b.noteRedis(err)
	if err != nil {
		return nil, fmt.Errorf("redis: restore session: %w", err)
	}
	entries, err := readStream.Result()
	if err != nil {
		return nil, fmt.Errorf("redis: restore session: reading the recovery stream: %w", err)
	}
	var sess wireSession
	if err := decodeWire(raw, &sess); err != nil {
		b.logLimited("restore-decode", slog.LevelWarn, "adapter: undecodable session", "err", err)
		return nil, nil
	}
	if sess.Nsp != a.name || sess.Pid != string(pid) || sess.Sid == "" {
		return nil, nil
	}
	if len(entries) == 0 || entries[0].ID != offset {
		// Trimmed since the check above.
		return nil, nil
	}
	missed := entries[1:]
	if len(missed) > b.opts.RecoveryMaxPackets {
		return nil, nil
	}
	rooms := make(map[string]struct{}, len(sess.Rooms))
	for _, r := range sess.Rooms {
		rooms[r] = struct{}{}
	}
	packets := make([]any, 0, len(missed))
	for _, e := range missed {
		payload, _ := e.Values[recoveryField].(string)
		var rec wireRecord
		if err := decodeWire([]byte(payload), &rec); err != nil {
			b.logLimited("restore-decode", slog.LevelWarn, "adapter: undecodable recovery entry", "id", e.ID, "err", err)
			return nil, nil
		}
		if rec.Nsp != a.name || !sessionMissed(rooms, sess.Node, &rec) {
			continue
		}
		if rec.ID != "" {
			setArgID(rec.Data, int(rec.IDArg), rec.ID)
		}
		packets = append(packets, append(rec.Data, e.ID))
	}
	return &socket.Session{
		SessionToPersist: &socket.SessionToPersist{
			Sid:   socket.SocketId(sess.Sid),
			Pid:   socket.PrivateSessionId(sess.Pid),
			Rooms: stringsToRooms(sess.Rooms),
			Data:  sess.Data,
		},
		MissedPackets: packets,
	}, nil
}

// sessionMissed reports whether a socket in rooms, persisted by instance
// node, would have received the recorded packet.
func sessionMissed(rooms map[string]struct{}, node string, rec *wireRecord) bool {
	if rec.Node != "" && rec.Node != node {
		return false
	}
	included := len(rec.Rooms) == 0
	for _, r := range rec.Rooms {
		if _, ok := rooms[r]; ok {
			included = true
			break
		}
	}
	if !included {
		return false
	}
	for _, r := range rec.Except {
		if _, ok := rooms[r]; ok {
			return false
		}
	}
	return true
}

// validPid accepts the private session ids the library generates (base64url)
// and nothing long or exotic.
func validPid(pid string) bool {
	if pid == "" || len(pid) > 64 {
		return false
	}
	for _, c := range pid {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// validOffset accepts a complete Redis stream id "<ms>-<seq>" other than
// unrecordedOffset.
func validOffset(offset string) bool {
	if offset == unrecordedOffset || len(offset) > 41 {
		return false
	}
	ms, seq, ok := strings.Cut(offset, "-")
	if !ok || ms == "" || seq == "" {
		return false
	}
	for _, part := range []string{ms, seq} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return false
			}
		}
		if _, err := strconv.ParseUint(part, 10, 64); err != nil {
			return false
		}
	}
	return true
}
