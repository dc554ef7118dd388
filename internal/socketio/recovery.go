package socketio

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/socketio/fanout"
	"github.com/chatd/chatd/protocol"
)

// sessionSweepInterval is how often, at most, expired sessions are dropped
// from memory.
const sessionSweepInterval = 10 * time.Second

// RecoveryAdapterBuilder builds the adapter of a single instance with
// connection state recovery on. It replaces the library's session-aware
// adapter, which keeps every packet of the last maximum disconnection
// duration however many there are, replays any number of them and lets a
// session be restored more than once.
type RecoveryAdapterBuilder struct {
	// MaxPackets is the most packets one restore replays; a client that
	// missed more gets a fresh session. Default
	// protocol.DefaultRecoveryMaxPackets.
	MaxPackets int
	// BufferLen is the most packets kept for restores, in packets. Default
	// protocol.DefaultRecoveryBufferLength.
	BufferLen int

	now func() time.Time // the clock; nil is time.Now
}

var _ socket.AdapterConstructor = (*RecoveryAdapterBuilder)(nil)

// New implements socket.AdapterConstructor.
func (b *RecoveryAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	maxAge := time.Duration(socket.DefaultMaxDisconnectionDuration) * time.Millisecond
	if csr := nsp.Server().Opts().ConnectionStateRecovery(); csr != nil && csr.MaxDisconnectionDuration() > 0 {
		maxAge = time.Duration(csr.MaxDisconnectionDuration()) * time.Millisecond
	}
	now := b.now
	if now == nil {
		now = time.Now
	}
	maxPackets, bufferLen := b.MaxPackets, b.BufferLen
	if maxPackets <= 0 {
		maxPackets = protocol.DefaultRecoveryMaxPackets
	}
	if bufferLen <= 0 {
		bufferLen = protocol.DefaultRecoveryBufferLength
	}
	a := &recoveryAdapter{
		Adapter:    socket.MakeAdapter(),
		maxAge:     maxAge,
		maxPackets: maxPackets,
		bufferLen:  bufferLen,
		now:        now,
		sessions:   make(map[socket.PrivateSessionId]droppedSession),
	}
	// Route the library's calls through this type's overrides.
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// recoveryAdapter is the library's in-memory adapter plus a bounded record
// of recent packets and of the sessions of dropped sockets. A packet's
// offset is its sequence number in decimal.
type recoveryAdapter struct {
	socket.Adapter

	maxAge     time.Duration // how long a dropped session and a packet are kept
	maxPackets int
	bufferLen  int
	now        func() time.Time

	mu       sync.Mutex // guards the following fields
	seq      uint64     // sequence number of the last recorded packet
	packets  []recordedPacket
	sessions map[socket.PrivateSessionId]droppedSession
	sweptAt  time.Time
	firstSeq uint64 // sequence number of packets[0]
}

type recordedPacket struct {
	at     time.Time
	data   []any
	rooms  []socket.Room // empty: every socket
	except []socket.Room
}

type droppedSession struct {
	s  *socket.SessionToPersist
	at time.Time
}

// Broadcast records an event without acknowledgement that is not volatile,
// with its offset as its last argument, before delivering it.
func (a *recoveryAdapter) Broadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	data, isArgs := packet.Data.([]any)
	volatile := opts != nil && opts.Flags != nil && opts.Flags.Volatile
	if isArgs && packet.Type == parser.EVENT && packet.Id == nil && !volatile {
		rec := recordedPacket{rooms: roomSet(opts, true), except: roomSet(opts, false)}
		a.mu.Lock()
		a.seq++
		data = append(data, strconv.FormatUint(a.seq, 10))
		rec.at, rec.data = a.now(), data
		if len(a.packets) == 0 {
			a.firstSeq = a.seq
		}
		a.packets = append(a.packets, rec)
		a.trimLocked()
		a.mu.Unlock()
		packet.Data = data
	}
	fanout.Local(a, packet, opts)
}

// roomSet returns the rooms (include) or the excepted rooms of opts. A
// slice, not a map: a broadcast names one room or two, and the packet is
// kept for recovery.max_disconnection.
func roomSet(opts *socket.BroadcastOptions, include bool) []socket.Room {
	if opts == nil {
		return nil
	}
	set := opts.Except
	if include {
		set = opts.Rooms
	}
	if set == nil || set.Len() == 0 {
		return nil
	}
	return set.Keys()
}

// trimLocked drops the packets past bufferLen and those older than maxAge.
func (a *recoveryAdapter) trimLocked() {
	drop := max(0, len(a.packets)-a.bufferLen)
	oldest := a.now().Add(-a.maxAge)
	for drop < len(a.packets) && a.packets[drop].at.Before(oldest) {
		drop++
	}
	if drop == 0 {
		return
	}
	clear(a.packets[:drop])
	a.packets = a.packets[drop:]
	a.firstSeq += uint64(drop)
}

// PersistSession keeps a dropped socket's session for maxAge.
func (a *recoveryAdapter) PersistSession(s *socket.SessionToPersist) {
	if s == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.sessions[s.Pid] = droppedSession{s: s, at: now}
	if now.Sub(a.sweptAt) >= sessionSweepInterval {
		a.sweptAt = now
		for pid, d := range a.sessions {
			if now.Sub(d.at) > a.maxAge {
				delete(a.sessions, pid)
			}
		}
	}
}

// RestoreSession takes a dropped session (a session restores once) and the
// packets its socket missed after offset. It returns nil, nil, meaning a
// fresh session, when the session is unknown or expired, when the offset is
// not one of the packets kept (malformed, forged, or dropped by the bounds),
// and when more than maxPackets packets follow it. An offset that is not
// kept leaves the session to its owner.
func (a *recoveryAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	seq, err := strconv.ParseUint(offset, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != offset {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.trimLocked()
	d, ok := a.sessions[pid]
	if !ok || len(a.packets) == 0 || seq < a.firstSeq || seq > a.seq {
		return nil, nil
	}
	delete(a.sessions, pid)
	if a.now().Sub(d.at) > a.maxAge {
		return nil, nil
	}
	after := a.packets[seq-a.firstSeq+1:]
	if len(after) > a.maxPackets {
		return nil, nil
	}
	var missed []any
	for _, p := range after {
		if reaches(p, d.s) {
			missed = append(missed, p.data)
		}
	}
	return &socket.Session{SessionToPersist: d.s, MissedPackets: missed}, nil
}

// reaches reports whether a socket in the session's rooms would have
// received the packet.
func reaches(p recordedPacket, s *socket.SessionToPersist) bool {
	if s.Rooms == nil {
		return len(p.rooms) == 0
	}
	included := len(p.rooms) == 0
	for _, r := range s.Rooms.Keys() {
		if slices.Contains(p.except, r) {
			return false
		}
		if !included && slices.Contains(p.rooms, r) {
			included = true
		}
	}
	return included
}

// LocalAdapterBuilder builds the adapter of a single instance with
// connection state recovery off: the library's in-memory adapter with
// chatd's cheaper local fan-out (see package fanout).
type LocalAdapterBuilder struct{}

var _ socket.AdapterConstructor = LocalAdapterBuilder{}

// New implements socket.AdapterConstructor.
func (LocalAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &localAdapter{Adapter: socket.MakeAdapter()}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// localAdapter is the library's in-memory adapter with fanout.Local.
type localAdapter struct {
	socket.Adapter
}

// Broadcast delivers packet to the sockets opts selects.
func (a *localAdapter) Broadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	fanout.Local(a, packet, opts)
}
