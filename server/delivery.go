package server

import (
	"context"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/rooms"
)

// Delivery sends chatd's server events to sockets on every instance,
// through the socket.io adapter: messages to rooms, presence and membership
// notices, custom events to rooms, users and sockets; and it finds and
// disconnects sockets. The socket handlers and the server API both deliver
// through it, so that both count and address events the same way.
type Delivery struct {
	nsp     socket.Namespace
	metrics *metrics
	events  events.Sink
}

// Delivery returns the server's delivery, for the server API.
func (s *Server) Delivery() *Delivery { return s.delivery }

// Message emits a stored message to every socket in its room, on every
// instance, except the socket that sent it (empty for server API sends),
// and publishes its message.created event. Call it once per stored message:
// both the socket path and the server API do, for a fresh message only.
func (d *Delivery) Message(msg rooms.Message, except socket.SocketId) {
	d.noteMessage(msg, except)
	op := d.nsp.To(socket.Room(msg.Room))
	if except != "" {
		op = op.Except(socket.Room(except))
	}
	_ = op.Emit("message", messagePayload(msg))
}

// noteMessage publishes a message's message.created event and counts its
// delivery. It comes before the local sockets get the message: a client
// that has the event and then reads /metrics finds it counted.
func (d *Delivery) noteMessage(msg rooms.Message, except socket.SocketId) {
	d.publishMessage(msg, except != "")
	d.metrics.eventsOut.WithLabelValues("message").Inc()
	if ids, ok := d.nsp.Adapter().Rooms().Load(socket.Room(msg.Room)); ok {
		n := ids.Len()
		if except != "" && ids.Has(except) {
			n--
		}
		d.metrics.fanout.Observe(float64(n))
	}
}

// storedBroadcaster is an adapter that can broadcast a message from inside
// the store's script, in the round trip that stores it (the Redis adapter
// on one Redis server).
type storedBroadcaster interface {
	// PrepareStored returns what the store runs, or nil.
	PrepareStored(data []any, idArg int, opts *socket.BroadcastOptions, onStored func(id string)) any
}

// messageDeliverer is a message on its way to the store (a socket's, or a
// server API post), which may deliver it too (rooms.Deliverer): the
// store's script then publishes it to the other instances, and the adapter
// gives it to this instance's sockets but the sender's, as Message does.
type messageDeliverer struct {
	d      *Delivery
	sb     storedBroadcaster
	except socket.SocketId
}

// Deliverer returns the deliverer of a message that socket except sends
// (empty for a server API post), for [rooms.Chat.SendAndDeliver] and
// [rooms.Chat.PostAndDeliver], or nil when the adapter cannot broadcast
// from the store's script. A message it did not deliver goes to Message.
func (d *Delivery) Deliverer(except socket.SocketId) rooms.Deliverer {
	sb, ok := d.nsp.Adapter().(storedBroadcaster)
	if !ok {
		return nil
	}
	return messageDeliverer{d: d, sb: sb, except: except}
}

// PrepareDelivery implements rooms.Deliverer.
func (md messageDeliverer) PrepareDelivery(m rooms.Message) any {
	opts := &socket.BroadcastOptions{
		Rooms:  types.NewSet(socket.Room(m.Room)),
		Except: types.NewSet[socket.Room](),
		Flags:  &socket.BroadcastFlags{},
	}
	if md.except != "" {
		opts.Except.Add(socket.Room(md.except))
	}
	return md.sb.PrepareStored([]any{"message", messagePayload(m)}, 1, opts, func(id string) {
		m.ID = id
		md.d.noteMessage(m, md.except)
	})
}

// messagePayload is msg as the `message` event carries it. A plain map
// (not the struct) travels to other instances without a JSON round trip.
func messagePayload(m rooms.Message) map[string]any {
	p := map[string]any{
		"id": m.ID, "room": m.Room, "userId": m.UserID, "name": m.Name, "text": m.Text, "ts": m.TS,
	}
	if m.ClientMsgID != "" {
		p["clientMsgId"] = m.ClientMsgID
	}
	return p
}

// Presence tells the others in room that u joined or left it, or came
// online or went offline.
func (d *Delivery) Presence(room string, u rooms.User, event string) {
	d.metrics.eventsOut.WithLabelValues("presence").Inc()
	_ = d.nsp.To(socket.Room(room)).Except(userRoom(u.ID)).Emit("presence", map[string]any{
		"room": room, "userId": u.ID, "name": u.Name, "event": event,
	})
}

// Membership tells every socket of a user (every tab, on every
// instance) that the user joined or left room. This is an addition to the
// protocol: `presence` only reaches the others in the room.
func (d *Delivery) Membership(userID, room, event string) {
	d.metrics.eventsOut.WithLabelValues("membership").Inc()
	_ = d.nsp.To(userRoom(userID)).Emit("membership", map[string]any{"room": room, "event": event})
}

// Announce tells the others in each of u's rooms that u came online or went
// offline.
func (d *Delivery) Announce(u rooms.User, memberOf []string, event string) {
	for _, room := range memberOf {
		d.Presence(room, u, event)
	}
}

// Emit sends a custom event (one the protocol does not define) to every
// socket in targets (chat rooms, user rooms, socket ids), each socket once.
func (d *Delivery) Emit(targets []socket.Room, event string, data any) error {
	if err := d.nsp.To(targets...).Emit(event, data); err != nil {
		return err
	}
	d.metrics.eventsOut.WithLabelValues("custom").Inc()
	return nil
}

// ReapOffline announces the users whose last socket was on an instance that
// stopped without saying goodbye. cmd/chatd calls it periodically.
func (s *Server) ReapOffline(ctx context.Context) {
	gone, err := s.chat.Reap(ctx)
	if err != nil {
		s.log.Warn("presence reap failed", "err", err)
	}
	for u, memberOf := range gone {
		s.publishUser(events.UserOffline, u, offlineInstanceLost)
		s.delivery.Announce(u, memberOf, "offline")
	}
}

// Disconnect disconnects every socket in room, on every instance, the way
// socket.disconnect() does on the server: the client gets a DISCONNECT
// packet, sees the reason "io server disconnect" and does not reconnect by
// itself; its connection closes once it has no namespace left. (Closing the
// transport instead, as DisconnectSockets(true) does, can drop that packet:
// the client then sees "transport close" and reconnects at once.)
func (d *Delivery) Disconnect(room socket.Room) {
	d.nsp.In(room).DisconnectSockets(false)
}

// FindSocket looks a socket up by id anywhere in the cluster, through the
// adapter, which may answer asynchronously. It returns nil when no instance
// has the socket, and an unavailable error when the cluster does not answer
// within the request's time.
func (d *Delivery) FindSocket(ctx context.Context, id string) (*socket.RemoteSocket, error) {
	type answer struct {
		socks []*socket.RemoteSocket
		err   error
	}
	ch := make(chan answer, 1)
	d.nsp.In(socket.Room(id)).FetchSockets()(func(socks []*socket.RemoteSocket, err error) {
		select {
		case ch <- answer{socks, err}:
		default: // answered already
		}
	})
	select {
	case <-ctx.Done():
		return nil, rooms.Errorf(rooms.CodeUnavailable, "the cluster did not answer the connection lookup in time; try again")
	case ans := <-ch:
		if ans.err != nil {
			return nil, &rooms.Error{Code: rooms.CodeUnavailable, Message: "the cluster could not look the connection up; try again", Err: ans.err}
		}
		for _, sock := range ans.socks {
			if string(sock.Id()) == id {
				return sock, nil
			}
		}
		return nil, nil
	}
}

// UserRoom is the socket.io room that holds every socket of a user, on
// every instance: a target of Emit and Disconnect that reaches all of them.
func UserRoom(userID string) socket.Room { return userRoom(userID) }

// SocketUser returns the user a socket authenticated as and when it
// connected, in Unix milliseconds, as the server stored them in the
// socket's data; ok is false for a socket the server did not authenticate.
// The server API reads it from the sockets FindSocket finds.
func SocketUser(sock *socket.RemoteSocket) (u rooms.User, connectedAt int64, ok bool) {
	return socketUser(sock.Data())
}

// DisplayName checks a display name the way the server checks the one a
// client connects with: empty is fallback (the user id), cut to the
// longest name; otherwise at most that many characters and no control
// characters. The error is a sentence that may be shown to the caller.
func DisplayName(name, fallback string) (string, error) {
	return displayName(name, fallback)
}
