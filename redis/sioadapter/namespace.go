package sioadapter

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/socketio/fanout"
)

// RedisAdapter is the adapter of one socket.io namespace in cluster mode. It
// embeds the library's in-memory adapter, which keeps the local rooms and
// delivers to local sockets, and overrides the operations that must reach
// the sockets of the other instances. AdapterBuilder.New creates it.
type RedisAdapter struct {
	socket.Adapter

	b      *AdapterBuilder
	name   string
	closed atomic.Bool

	lastRecordMs atomic.Int64 // Redis time of the last recorded packet, in Unix milliseconds
	trimmedAt    atomic.Int64 // when the recovery stream was last trimmed by age, in local Unix milliseconds
}

var _ socket.Adapter = (*RedisAdapter)(nil)

func (a *RedisAdapter) roomChanged(args []any) {
	if len(args) == 0 {
		return
	}
	if room, ok := args[0].(socket.Room); ok {
		a.b.markRoom(a, room)
	}
}

// wantsRoom reports whether this instance needs the room's channel: the
// room has a local socket.
func (a *RedisAdapter) wantsRoom(room socket.Room) bool {
	if a.closed.Load() {
		return false
	}
	_, ok := a.Rooms().Load(room)
	return ok
}

// Close detaches the namespace from the cluster. The socket.io server calls
// it when it closes.
func (a *RedisAdapter) Close() {
	if a.closed.Swap(true) {
		return
	}
	a.b.removeAdapter(a)
	a.Rooms().Range(func(room socket.Room, _ *types.Set[socket.SocketId]) bool {
		a.b.markRoom(a, room)
		return true
	})
	a.Adapter.Close()
}

// ServerCount returns the number of live instances, this one included.
func (a *RedisAdapter) ServerCount() int64 {
	return int64(a.b.Nodes())
}

func adapterNormalizeOpts(opts *socket.BroadcastOptions) *socket.BroadcastOptions {
	var o socket.BroadcastOptions
	if opts != nil {
		o = *opts
	}
	if o.Rooms == nil {
		o.Rooms = types.NewSet[socket.Room]()
	}
	if o.Except == nil {
		o.Except = types.NewSet[socket.Room]()
	}
	if o.Flags == nil {
		o.Flags = &socket.BroadcastFlags{}
	}
	return &o
}

// localOnly reports whether an operation concerns this instance's sockets
// only: the local flag is set, or every target room is the id of a local
// socket (socket.Emit with connection state recovery on).
func (a *RedisAdapter) localOnly(opts *socket.BroadcastOptions) bool {
	if opts.Flags.Local {
		return true
	}
	if opts.Rooms.Len() == 0 {
		return false
	}
	sockets := a.Nsp().Sockets()
	for _, room := range opts.Rooms.Keys() {
		if _, ok := sockets.Load(socket.SocketId(room)); !ok {
			return false
		}
	}
	return true
}

// channelFor picks where an operation on opts goes: the room's channel when
// it targets exactly one room (only instances with a socket in it listen),
// otherwise the bus every instance listens to. Several rooms go to the bus so
// that a socket in two of them gets the packet once.
func (a *RedisAdapter) channelFor(opts *socket.BroadcastOptions) string {
	if opts.Rooms.Len() == 1 {
		return a.b.roomChannel(a.name, opts.Rooms.Keys()[0])
	}
	return a.b.busChannel
}

// recovery returns whether connection state recovery is on (for this
// namespace: see AdapterOptions.RecoveryNamespaces) and its maximum
// disconnection duration in milliseconds. With a custom adapter the library
// does not fill the default duration, so 0 means the library's default.
func (a *RedisAdapter) recovery() (bool, int64) {
	csr := a.Nsp().Server().Opts().ConnectionStateRecovery()
	if csr == nil || (len(a.b.opts.RecoveryNamespaces) > 0 && !slices.Contains(a.b.opts.RecoveryNamespaces, a.name)) {
		return false, 0
	}
	ms := csr.MaxDisconnectionDuration()
	if ms <= 0 {
		ms = socket.DefaultMaxDisconnectionDuration
	}
	return true, ms
}

// Broadcast delivers a packet to the local sockets first, then publishes it
// to the other instances. With connection state recovery on, an event
// without acknowledgement that is not volatile is first added to the
// recovery stream and carries the stream id as its last argument (the
// offset a reconnecting client sends back).
func (a *RedisAdapter) Broadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	opts = adapterNormalizeOpts(opts)
	remote := !a.localOnly(opts)
	data, isArgs := packet.Data.([]any)
	recoverOn, maxAgeMs := a.recovery()
	record := recoverOn && isArgs && packet.Type == parser.EVENT && packet.Id == nil && !opts.Flags.Volatile
	if !remote && !record {
		fanout.Local(a, packet, opts)
		return
	}
	if !isArgs {
		a.b.logLimited("broadcast-data", slog.LevelError, "adapter: packet data is not an argument list; delivered locally only", "type", packet.Type.String())
		fanout.Local(a, packet, opts)
		return
	}
	plain, err := wirePlainArgs(data)
	if err != nil {
		a.b.dropped(kindBroadcast, "encode", err)
		a.b.logLimited("broadcast-encode", slog.LevelError, "adapter: packet cannot leave this instance; delivered locally only", "err", err)
		fanout.Local(a, packet, opts)
		return
	}
	maxAge := time.Duration(maxAgeMs) * time.Millisecond
	if record && remote {
		if offset, done := a.recordAndPublish(plain, packetType(packet), opts, maxAge); done {
			packet.Data = append(plain, offset)
			fanout.Local(a, packet, opts)
			return
		}
	}
	if record {
		plain = append(plain, a.record(plain, opts, maxAge))
	}
	packet.Data = plain
	fanout.Local(a, packet, opts)
	if remote {
		_ = a.b.publish(a.channelFor(opts), &wireMessage{
			Kind:       kindBroadcast,
			Nsp:        a.name,
			PacketType: packetType(packet),
			Data:       plain,
			Opts:       optsToWire(opts),
		})
	}
}

// BroadcastWithAck delivers a packet that expects acknowledgements. Every
// other instance answers with the number of sockets it reached and then with
// each socket's acknowledgement, until the broadcast's timeout.
func (a *RedisAdapter) BroadcastWithAck(packet *parser.Packet, opts *socket.BroadcastOptions, clientCountCallback func(uint64), ack socket.Ack) {
	opts = adapterNormalizeOpts(opts)
	data, isArgs := packet.Data.([]any)
	if a.localOnly(opts) || !isArgs {
		a.Adapter.BroadcastWithAck(packet, opts, clientCountCallback, ack)
		return
	}
	plain, err := wirePlainArgs(data)
	if err != nil {
		a.b.dropped(kindBroadcastAck, "encode", err)
		a.b.logLimited("broadcast-encode", slog.LevelError, "adapter: packet cannot leave this instance; delivered locally only", "err", err)
		a.Adapter.BroadcastWithAck(packet, opts, clientCountCallback, ack)
		return
	}
	packet.Data = plain
	ttl := a.b.opts.RequestTimeout
	if opts.Flags.Timeout != nil {
		ttl = *opts.Flags.Timeout
	}
	req := a.b.reqs.newID()
	a.b.reqs.addAck(req, &pendingAck{count: clientCountCallback, ack: ack}, ttl+time.Second)
	a.Adapter.BroadcastWithAck(packet, opts, clientCountCallback, ack)
	_ = a.b.publish(a.b.busChannel, &wireMessage{
		Kind:       kindBroadcastAck,
		Nsp:        a.name,
		Req:        req,
		PacketType: packetType(packet),
		Data:       plain,
		Opts:       optsToWire(opts),
	})
}

// AddSockets makes the matching sockets of every instance join rooms.
func (a *RedisAdapter) AddSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	opts = adapterNormalizeOpts(opts)
	a.Adapter.AddSockets(opts, rooms)
	a.publishRequest(kindSocketsJoin, opts, rooms, false)
}

// DelSockets makes the matching sockets of every instance leave rooms.
func (a *RedisAdapter) DelSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	opts = adapterNormalizeOpts(opts)
	a.Adapter.DelSockets(opts, rooms)
	a.publishRequest(kindSocketsLeave, opts, rooms, false)
}

// DisconnectSockets disconnects the matching sockets of every instance;
// closeConn also closes their underlying connections.
func (a *RedisAdapter) DisconnectSockets(opts *socket.BroadcastOptions, closeConn bool) {
	opts = adapterNormalizeOpts(opts)
	a.Adapter.DisconnectSockets(opts, closeConn)
	a.publishRequest(kindDisconnectSockets, opts, nil, closeConn)
}

func (a *RedisAdapter) publishRequest(kind wireKind, opts *socket.BroadcastOptions, rooms []socket.Room, closeConn bool) {
	if a.localOnly(opts) {
		return
	}
	m := &wireMessage{Kind: kind, Nsp: a.name, Opts: optsToWire(opts), Close: closeConn}
	for _, r := range rooms {
		m.Rooms = append(m.Rooms, string(r))
	}
	_ = a.b.publish(a.channelFor(opts), m)
}

// FetchSockets returns the matching sockets of every instance. The returned
// function blocks until every live instance has answered or RequestTimeout
// has passed; then it calls back with the sockets found (local ones are
// *socket.Socket, remote ones carry id, handshake, rooms and data) and, on a
// timeout, an error wrapping ErrRequestTimeout.
func (a *RedisAdapter) FetchSockets(opts *socket.BroadcastOptions) func(func([]socket.SocketDetails, error)) {
	opts = adapterNormalizeOpts(opts)
	return func(callback func([]socket.SocketDetails, error)) {
		var found []socket.SocketDetails
		a.Adapter.FetchSockets(opts)(func(local []socket.SocketDetails, _ error) {
			found = append(found, local...)
		})
		if a.localOnly(opts) {
			callback(found, nil)
			return
		}
		replies, err := a.b.request(context.Background(), &wireMessage{Kind: kindFetchSockets, Nsp: a.name, Opts: optsToWire(opts)})
		seen := make(map[socket.SocketId]struct{}, len(found))
		for _, s := range found {
			seen[s.Id()] = struct{}{}
		}
		for _, r := range replies {
			for _, s := range r.Sockets {
				id := socket.SocketId(s.ID)
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = struct{}{}
				hs := s.Handshake
				if hs == nil {
					hs = &socket.Handshake{}
				}
				found = append(found, &remoteSocket{id: id, handshake: hs, rooms: stringsToRooms(s.Rooms), data: s.Data})
			}
		}
		callback(found, err)
	}
}

// ServerSideEmit sends an event to the other instances' namespace listeners.
// When the last argument is a socket.Ack, it is called once every live
// instance has answered (or RequestTimeout passed) with all their answers.
func (a *RedisAdapter) ServerSideEmit(packet []any) error {
	if len(packet) == 0 {
		return errUnsupportedData
	}
	ack, withAck := packet[len(packet)-1].(socket.Ack)
	args := packet
	if withAck {
		args = packet[:len(packet)-1]
	}
	plain, err := wirePlainArgs(args)
	if err != nil {
		return err
	}
	m := &wireMessage{Kind: kindServerSideEmit, Nsp: a.name, Data: plain, WithAck: withAck}
	if !withAck {
		return a.b.publish(a.b.busChannel, m)
	}
	go func() {
		replies, err := a.b.request(context.Background(), m)
		var answers []any
		for _, r := range replies {
			answers = append(answers, r.Data...)
		}
		ack(answers, err)
	}()
	return nil
}

// onRemote applies a message from another instance to this namespace. It
// runs on the receiving goroutine, in the order messages were published;
// what runs application listeners goes to the work goroutine.
func (a *RedisAdapter) onRemote(m *wireMessage) {
	if (m.Kind == kindBroadcast || m.Kind == kindBroadcastAck) && !parser.PacketType(m.PacketType).Valid() {
		a.b.logLimited("packet-type", slog.LevelWarn, "adapter: broadcast with an invalid packet type dropped", "from", m.From)
		return
	}
	switch m.Kind {
	case kindBroadcast:
		if m.ID != "" && !a.b.opts.legacyWire && !setArgID(m.Data, int(m.IDArg), m.ID) {
			a.b.logLimited("broadcast-id", slog.LevelWarn, "adapter: stored broadcast without a map for its id", "from", m.From)
		}
		if m.Offset != "" && !a.b.opts.legacyWire {
			m.Data = append(m.Data, m.Offset)
		}
		fanout.Local(a, &parser.Packet{Type: parser.PacketType(m.PacketType), Data: m.Data}, optsFromWire(m.Opts))
	case kindBroadcastAck:
		from, req := m.From, m.Req
		a.Adapter.BroadcastWithAck(
			&parser.Packet{Type: parser.PacketType(m.PacketType), Data: m.Data},
			optsFromWire(m.Opts),
			func(n uint64) {
				a.b.reply(from, &wireMessage{Kind: kindBroadcastAckCount, Req: req, Count: n})
			},
			func(args []any, _ error) {
				plain, err := wirePlainArgs(args)
				if err != nil {
					a.b.dropped(kindBroadcastAckReply, "encode", err)
					return
				}
				a.b.reply(from, &wireMessage{Kind: kindBroadcastAckReply, Req: req, Data: plain})
			})
	case kindSocketsJoin, kindSocketsLeave:
		rooms := make([]socket.Room, len(m.Rooms))
		for i, r := range m.Rooms {
			rooms[i] = socket.Room(r)
		}
		if m.Kind == kindSocketsJoin {
			a.Adapter.AddSockets(optsFromWire(m.Opts), rooms)
		} else {
			a.Adapter.DelSockets(optsFromWire(m.Opts), rooms)
		}
		if m.Req != "" {
			a.answerMembership(m, rooms)
		}
	case kindDisconnectSockets:
		// Disconnecting runs the application's disconnect listeners, which
		// may wait on the cluster (fetchSockets): keep them off the
		// receiving goroutine.
		opts, closeConn := optsFromWire(m.Opts), m.Close
		a.b.enqueueWork(m.Kind, func() { a.Adapter.DisconnectSockets(opts, closeConn) })
	case kindFetchSockets:
		reply := &wireMessage{Kind: kindFetchSocketsReply, Req: m.Req}
		a.Adapter.FetchSockets(optsFromWire(m.Opts))(func(local []socket.SocketDetails, _ error) {
			for _, s := range local {
				reply.Sockets = append(reply.Sockets, a.b.describe(s))
			}
		})
		a.b.reply(m.From, reply)
	case kindServerSideEmit:
		args := m.Data
		if m.WithAck {
			from, req := m.From, m.Req
			var once sync.Once
			args = append(args, socket.Ack(func(answer []any, _ error) {
				once.Do(func() {
					plain, err := wirePlainArgs(answer)
					if err != nil {
						a.b.dropped(kindServerSideEmitReply, "encode", err)
						return
					}
					a.b.reply(from, &wireMessage{Kind: kindServerSideEmitReply, Req: req, Data: plain})
				})
			}))
		}
		nsp := a.Nsp()
		a.b.enqueueWork(m.Kind, func() { nsp.OnServerSideEmit(args) })
	}
}

// describe turns a local socket into its fetch-sockets description. Data
// and the handshake's auth are made plain (see wirePlain); data that cannot
// be is left out and logged.
func (b *AdapterBuilder) describe(s socket.SocketDetails) wireSocket {
	ws := wireSocket{ID: string(s.Id()), Rooms: roomsToStrings(s.Rooms())}
	if hs := s.Handshake(); hs != nil {
		copied := *hs
		if copied.Auth != nil {
			if auth, err := wirePlain(copied.Auth); err == nil {
				copied.Auth, _ = auth.(map[string]any)
			} else {
				copied.Auth = nil
			}
		}
		ws.Handshake = &copied
	}
	data, err := wirePlain(s.Data())
	if err != nil {
		b.logLimited("socket-data", slog.LevelError, "adapter: socket data cannot be sent to other instances", "sid", string(s.Id()), "err", err)
	} else {
		ws.Data = data
	}
	return ws
}

// packetType is a socket.io packet's type as the wire carries it: one of
// the protocol's seven types, 0 to 6, so the conversion cannot overflow.
func packetType(p *parser.Packet) uint8 {
	return uint8(p.Type) //nolint:gosec // socket.io packet types are 0 to 6
}
