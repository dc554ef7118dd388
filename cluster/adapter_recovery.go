package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// unrecordedOffset is the offset given to a packet that could not be added
// to the recovery stream (Redis unreachable). It is a well-formed stream id
// that no entry can have, so a client that reconnects with it gets a fresh
// session instead of a restore that silently lacks the packet.
const unrecordedOffset = "0-0"

// recoveryField is the stream entry field holding the msgpack record.
const recoveryField = "p"

// record adds a broadcast packet to the recovery stream and returns its
// offset (the stream id), or unrecordedOffset when Redis is unreachable; it
// fails fast while Redis is known to be down.
func (b *AdapterBuilder) record(nsp string, data []any, opts *socket.BroadcastOptions) string {
	if !b.redisOK.Load() {
		b.stats.recordErrors.Add(1)
		return unrecordedOffset
	}
	rec := wireRecord{Nsp: nsp, Data: data, Rooms: roomsToStrings(opts.Rooms), Except: roomsToStrings(opts.Except)}
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
	id, err := b.client.XAdd(ctx, &redis.XAddArgs{
		Stream: b.streamKey,
		MaxLen: b.opts.RecoveryStreamLength,
		Approx: true,
		Values: []any{recoveryField, payload},
	}).Result()
	b.noteRedis(err)
	if err != nil {
		b.stats.recordErrors.Add(1)
		b.logLimited("record", slog.LevelWarn, "adapter: packet not recorded for recovery", "err", err)
		return unrecordedOffset
	}
	b.stats.recorded.Add(1)
	return id
}

func (b *AdapterBuilder) sessionKey(pid string) string { return b.sessionKeys + pid }

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
	err = b.client.Set(ctx, b.sessionKey(rec.Pid), payload, time.Duration(maxMs)*time.Millisecond).Err()
	b.noteRedis(err)
	if err != nil {
		b.logLimited("persist", slog.LevelWarn, "adapter: session not persisted", "err", err)
	}
}

// RestoreSession takes a persisted session (a session restores once) and
// the packets its socket missed since offset, on any instance. It returns
// nil, nil, meaning a fresh session, when the session is unknown or
// expired, when pid or offset are malformed, when the offset is no longer in
// the recovery stream (trimmed, or never recorded) and when the socket
// missed more than RecoveryMaxPackets packets of the stream.
func (a *RedisAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	on, _ := a.recovery()
	if !on || !validPid(string(pid)) || !validOffset(offset) {
		return nil, nil
	}
	b := a.b
	if !b.redisOK.Load() {
		// Fail fast: the client waits for its CONNECT meanwhile.
		return nil, errors.New("cluster: restore session: Redis unreachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.RequestTimeout)
	defer cancel()
	pipe := b.client.Pipeline()
	getSession := pipe.GetDel(ctx, b.sessionKey(string(pid)))
	// The offset entry itself plus at most RecoveryMaxPackets+1 after it.
	readStream := pipe.XRangeN(ctx, b.streamKey, offset, "+", int64(b.opts.RecoveryMaxPackets)+2)
	_, _ = pipe.Exec(ctx)

	raw, err := getSession.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	b.noteRedis(err)
	if err != nil {
		return nil, fmt.Errorf("cluster: restore session: %w", err)
	}
	entries, err := readStream.Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: restore session: reading the recovery stream: %w", err)
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
		// The offset was trimmed from the stream or never was in it: the
		// packets missed cannot be known.
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
