// Package fanout delivers a socket.io broadcast to the sockets of this
// instance, for chatd's adapters (the single-instance recovery adapter in
// package server and the Redis adapter in package cluster).
//
// It does what the library's in-memory adapter does in Broadcast (v3.0.6,
// servers/socket/v3/adapter.go), with one difference that matters for
// speed: the library hands every recipient the encoded packet together with
// a "pre-encoded WebSocket frame", and its WebSocket transport then builds a
// new gorilla PreparedMessage from that frame for every recipient, which
// costs a compression-ready copy and about 12 kB of garbage per delivery. Here
// the packet is encoded once and written as it is; each transport frames it.
// Measured with cmd/chatbench (fan-out, 100 rooms of 20 at 1,000 messages/s
// on one CPU) this cut chatd's CPU per delivery by about a third and its p99
// latency by more than half; see bench/RESULTS.md. What the library would
// need to make its own path cheap: prepare the frame once per broadcast.
//
// A recipient on chatd's own WebSocket transport (internal/wstransport) gets
// more: the WebSocket frame itself is built once per broadcast and the same
// bytes go to every such recipient, past the engine's per-socket write path
// (its write buffer, events and per-packet copies).
package fanout

import (
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/socketio/wstransport"
)

// Local delivers packet to the local sockets that opts selects: those in any
// of opts.Rooms (every socket of the adapter when there is none), except
// those in any of opts.Except, each once.
func Local(a socket.Adapter, packet *parser.Packet, opts *socket.BroadcastOptions) {
	wo := &socket.WriteOptions{}
	wo.PreEncoded = true
	if opts != nil && opts.Flags != nil {
		wo.Volatile = opts.Flags.Volatile
		wo.Compress = opts.Flags.Compress
	}
	nsp := a.Nsp()
	packet.Nsp = nsp.Name()
	encoded := nsp.Server().Encoder().Encode(packet)

	// The shared WebSocket frame, built for the first recipient that can take
	// it; only a packet that encodes to one text part (no binary
	// attachments) has one.
	var frame []byte
	sharable := len(encoded) == 1
	if sharable {
		_, sharable = encoded[0].(*types.StringBuffer)
	}

	var except map[socket.SocketId]struct{}
	if opts != nil && opts.Except != nil && opts.Except.Len() > 0 {
		except = make(map[socket.SocketId]struct{})
		for _, r := range opts.Except.Keys() {
			if ids, ok := a.Rooms().Load(r); ok {
				for _, id := range ids.Keys() {
					except[id] = struct{}{}
				}
			}
		}
	}
	send := func(id socket.SocketId) {
		if _, skip := except[id]; skip {
			return
		}
		s, ok := nsp.Sockets().Load(id)
		if !ok || !s.Connected() {
			return
		}
		if notify := s.NotifyOutgoingListeners(); notify != nil {
			notify(packet)
		}
		if sharable {
			if t, ok := direct(s.Conn()); ok {
				if frame == nil {
					frame = wstransport.MessageFrame(encoded[0].Bytes())
				}
				t.WriteFrame(frame, wo.Volatile)
				return
			}
		}
		s.Client().WriteToEngine(encoded, wo)
	}

	if opts == nil || opts.Rooms == nil || opts.Rooms.Len() == 0 {
		a.Sids().Range(func(id socket.SocketId, _ *types.Set[socket.Room]) bool {
			send(id)
			return true
		})
		return
	}
	if opts.Rooms.Len() == 1 {
		// The common case, a single room: no socket can be met twice.
		for _, r := range opts.Rooms.Keys() {
			if ids, ok := a.Rooms().Load(r); ok {
				for _, id := range ids.Keys() {
					send(id)
				}
			}
		}
		return
	}
	seen := make(map[socket.SocketId]struct{})
	for _, r := range opts.Rooms.Keys() {
		ids, ok := a.Rooms().Load(r)
		if !ok {
			continue
		}
		for _, id := range ids.Keys() {
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			send(id)
		}
	}
}

// direct returns the WebSocket transport of an open Engine.IO connection,
// if it is chatd's and settled: then a frame can be written to it directly.
func direct(conn engine.Socket) (*wstransport.Transport, bool) {
	if conn == nil || conn.ReadyState() != "open" {
		return nil, false
	}
	t, ok := conn.Transport().(*wstransport.Transport)
	if !ok || !t.Settled() {
		return nil, false
	}
	return t, true
}
