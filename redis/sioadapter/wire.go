package sioadapter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// wireKind says what a message between instances asks for. The values are
// part of the wire format shared by every instance of a deployment: append
// new kinds, never renumber.
type wireKind uint8

const (
	kindHeartbeat wireKind = iota + 1
	kindGoodbye
	kindBroadcast
	kindBroadcastAck
	kindBroadcastAckCount
	kindBroadcastAckReply
	kindSocketsJoin
	kindSocketsLeave
	kindDisconnectSockets
	kindFetchSockets
	kindFetchSocketsReply
	kindServerSideEmit
	kindServerSideEmitReply
	// kindSocketsReply answers a socketsJoin or socketsLeave that carries a
	// request id: the change is applied on the answering instance (for a
	// join, with the rooms' channels subscribed).
	kindSocketsReply
)

// String returns the kind's name, as used in metrics labels and logs.
func (k wireKind) String() string {
	switch k {
	case kindHeartbeat:
		return "heartbeat"
	case kindGoodbye:
		return "goodbye"
	case kindBroadcast:
		return "broadcast"
	case kindBroadcastAck:
		return "broadcast_ack"
	case kindBroadcastAckCount:
		return "broadcast_ack_count"
	case kindBroadcastAckReply:
		return "broadcast_ack_reply"
	case kindSocketsJoin:
		return "sockets_join"
	case kindSocketsLeave:
		return "sockets_leave"
	case kindDisconnectSockets:
		return "disconnect_sockets"
	case kindFetchSockets:
		return "fetch_sockets"
	case kindFetchSocketsReply:
		return "fetch_sockets_reply"
	case kindServerSideEmit:
		return "server_side_emit"
	case kindServerSideEmitReply:
		return "server_side_emit_reply"
	case kindSocketsReply:
		return "sockets_reply"
	default:
		return "unknown"
	}
}

// wireMessage is the one envelope every message between instances travels
// in, encoded with msgpack. Fields a kind does not use stay empty.
type wireMessage struct {
	Kind  wireKind `msgpack:"k"`
	From  string   `msgpack:"f"`
	Nonce string   `msgpack:"x,omitempty"` // heartbeat: the sender's incarnation
	Nsp   string   `msgpack:"n,omitempty"`
	Req   string   `msgpack:"q,omitempty"` // request id, answered on the sender's channel

	PacketType uint8     `msgpack:"p,omitempty"`
	Data       []any     `msgpack:"d,omitempty"` // packet data, event arguments or ack arguments
	Opts       *wireOpts `msgpack:"o,omitempty"`
	Rooms      []string  `msgpack:"r,omitempty"` // rooms to join or leave (with Req: answer once applied)
	Close      bool      `msgpack:"c,omitempty"` // disconnect: close the underlying connection
	WithAck    bool      `msgpack:"a,omitempty"` // server-side emit expects answers
	Count      uint64    `msgpack:"u,omitempty"` // broadcast with ack: sockets reached

	Sockets []wireSocket `msgpack:"s,omitempty"`

	// Features says, in a heartbeat, what its sender understands (the
	// feature* bits).
	Features uint8 `msgpack:"y,omitempty"`

	// Seq numbers, on Redis Cluster, the messages of the publish queue in
	// the order they are sent (see withSeq and seqs).
	Seq uint64 `msgpack:"g,omitempty"`

	// Offset is the recovery offset of a broadcast that was recorded and
	// published in one script: the last argument of its event, which the
	// script could only add once it had the stream id (see
	// encodeWireWithOffset). Receivers append it to Data.
	Offset string `msgpack:"z,omitempty"`

	// ID is, in a broadcast that a store's script published
	// (StoredBroadcast), the id the script gave the message: receivers set
	// it as the "id" of the map Data[IDArg] before delivering. The script
	// appends it after the map's other fields, and Offset after it.
	ID    string `msgpack:"i,omitempty"`
	IDArg uint8  `msgpack:"j,omitempty"`
}

// featureOffset: the instance appends wireMessage.Offset to a broadcast's
// Data. Instances built before it ignore the field, so the others use it
// only while every live instance says it has it.
const featureOffset uint8 = 1

// featureSharded: the instance uses sharded Pub/Sub (it is on Redis
// Cluster). Instances that do not agree on it do not hear each other's
// broadcasts: see handle.
const featureSharded uint8 = 2

// featureStoredID: the instance sets wireMessage.ID and wireRecord.ID in
// Data (StoredBroadcast). Instances built before it would deliver such a
// message without its id, so the others use it only while every live
// instance says it has it.
const featureStoredID uint8 = 4

// wireOpts carries the parts of socket.BroadcastOptions that matter to the
// receiving instance.
type wireOpts struct {
	Rooms    []string `msgpack:"r,omitempty"`
	Except   []string `msgpack:"e,omitempty"`
	Volatile bool     `msgpack:"v,omitempty"`
	Compress *bool    `msgpack:"c,omitempty"`
}

// wireSocket describes one socket in a fetch-sockets answer.
type wireSocket struct {
	ID        string            `msgpack:"i"`
	Handshake *socket.Handshake `msgpack:"h,omitempty"`
	Rooms     []string          `msgpack:"r,omitempty"`
	Data      any               `msgpack:"d,omitempty"`
}

// wireRecord is one entry of the recovery stream: a packet that a
// disconnected socket may have missed, without its offset (the entry id is
// the offset).
type wireRecord struct {
	Nsp    string   `msgpack:"n"`
	Data   []any    `msgpack:"d"`
	Rooms  []string `msgpack:"r,omitempty"`
	Except []string `msgpack:"e,omitempty"`
	Node   string   `msgpack:"o,omitempty"` // set for local-only broadcasts: only that instance's sockets got it
	// ID and IDArg are wireMessage's: the id of a stored broadcast, set
	// into Data when the packet is restored, appended by the script.
	ID    string `msgpack:"i,omitempty"`
	IDArg uint8  `msgpack:"j,omitempty"`
}

// wireSession is a disconnected socket's state kept for connection state
// recovery.
type wireSession struct {
	Nsp   string   `msgpack:"n"`
	Sid   string   `msgpack:"s"`
	Pid   string   `msgpack:"p"`
	Rooms []string `msgpack:"r,omitempty"`
	Data  any      `msgpack:"d,omitempty"`
	Node  string   `msgpack:"o,omitempty"`
}

func encodeWire(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeWireWithOffset encodes m (whose Offset must be empty) as a msgpack
// map that ends with the key of Offset and lacks its value, for
// recordPublishScript to complete with the stream id.
func encodeWireWithOffset(m *wireMessage) ([]byte, error) {
	if m.Offset != "" {
		return nil, errors.New("redis: the message has an offset already")
	}
	b, err := encodeWire(m)
	if err != nil {
		return nil, err
	}
	return extendWireMap(b, "z") // Offset's key
}

// withSeq returns the encoded message b with Seq set to seq, without
// encoding it again. b must not have Seq already.
func withSeq(b []byte, seq uint64) ([]byte, error) {
	b, err := extendWireMap(b, "g") // Seq's key
	if err != nil {
		return nil, err
	}
	b = append(b, 0xcf) // uint 64
	return binary.BigEndian.AppendUint64(b, seq), nil
}

// extendWireMap turns the msgpack map b into the start of a map with one
// more field, whose key (at most 31 bytes) it appends and whose value is
// left for the caller to append.
func extendWireMap(b []byte, key string) ([]byte, error) {
	if len(key) > 31 {
		return nil, fmt.Errorf("redis: map key %q is too long", key)
	}
	b, err := growWireMap(b)
	if err != nil {
		return nil, err
	}
	b = append(b, 0xa0|byte(len(key))) //nolint:gosec // a fixstr key is under 32 bytes
	return append(b, key...), nil
}

// growWireMap adds one to the number of fields of the msgpack map b, whose
// key and value the caller appends.
func growWireMap(b []byte) ([]byte, error) {
	switch {
	case len(b) == 0:
		return nil, errors.New("redis: no msgpack map to extend")
	case len(b) > 0 && b[0] >= 0x80 && b[0] < 0x8f: // fixmap of 0 to 14 fields
		b[0]++
	case len(b) > 0 && b[0] == 0x8f: // 15 fields: a map 16 from now on
		b = append([]byte{0xde, 0, 16}, b[1:]...)
	case len(b) >= 3 && b[0] == 0xde && (b[1] != 0xff || b[2] != 0xff):
		n := uint16(b[1])<<8 | uint16(b[2]) + 1
		b[1], b[2] = byte(n>>8), byte(n) //nolint:gosec // the two bytes of n, big-endian
	default:
		return nil, fmt.Errorf("redis: msgpack starting with %#x is no map with room for another field", b[0])
	}
	return b, nil
}

// decodeWire decodes msgpack into v and widens the numbers of its untyped
// values to int64 (uint64 above its range) and float64 whatever width they
// were sent with, so that remote data has the same types whoever sent it.
// (msgpack's "loose" decoding would do the numbers but turns binary into
// strings.)
func decodeWire(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return err
	}
	switch x := v.(type) {
	case *wireMessage:
		wireWidenArgs(x.Data)
		for i := range x.Sockets {
			s := &x.Sockets[i]
			s.Data = wireWiden(s.Data)
			if s.Handshake != nil {
				wireWidenMap(s.Handshake.Auth)
				wireWidenMap(s.Handshake.Headers)
				wireWidenMap(s.Handshake.Query)
			}
		}
	case *wireRecord:
		wireWidenArgs(x.Data)
	case *wireSession:
		x.Data = wireWiden(x.Data)
	}
	return nil
}

func wireWidenArgs(args []any) {
	for i, item := range args {
		args[i] = wireWiden(item)
	}
}

func wireWidenMap[M ~map[string]any](m M) {
	for k, item := range m {
		m[k] = wireWiden(item)
	}
}

func wireWiden(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x)
		}
		return uint64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case float32:
		return float64(x)
	case []any:
		wireWidenArgs(x)
		return x
	case map[string]any:
		wireWidenMap(x)
		return x
	default:
		return x
	}
}

// errUnsupportedData is returned when a payload cannot be made plain.
var errUnsupportedData = errors.New("redis: payload cannot be sent to other instances")

// wirePlain turns a payload into the plain shape every instance can encode
// and deliver the same way: nil, bool, string, numbers, []byte (binary),
// []any and map[string]any. Readers are read into []byte (the socket.io
// parser would consume them on the first delivery otherwise); any other value
// (structs, typed maps and slices, time.Time...) goes through encoding/json,
// the same encoding the socket.io parser uses for clients, so a struct with
// json tags reaches remote clients with exactly the fields local clients see.
func wirePlain(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64,
		float32, float64:
		return x, nil
	case []byte:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			p, err := wirePlain(item)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			p, err := wirePlain(item)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	case *types.StringBuffer:
		return x.String(), nil
	case *strings.Reader:
		b, err := io.ReadAll(x)
		if err != nil {
			return nil, fmt.Errorf("%w: reading %T: %w", errUnsupportedData, x, err)
		}
		return string(b), nil
	case types.BufferInterface:
		// Bytes does not consume the buffer, unlike Read.
		return bytes.Clone(x.Bytes()), nil
	case io.Reader:
		b, err := io.ReadAll(x)
		if err != nil {
			return nil, fmt.Errorf("%w: reading %T: %w", errUnsupportedData, x, err)
		}
		return b, nil
	case json.Number:
		return wirePlainNumber(x), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("%w: %T: %w", errUnsupportedData, x, err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var generic any
		if err := dec.Decode(&generic); err != nil {
			return nil, fmt.Errorf("%w: %T: %w", errUnsupportedData, x, err)
		}
		return wirePlainJSON(generic), nil
	}
}

// wirePlainJSON replaces the json.Number values of a decoded JSON tree.
func wirePlainJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		return wirePlainNumber(x)
	case []any:
		for i, item := range x {
			x[i] = wirePlainJSON(item)
		}
		return x
	case map[string]any:
		for k, item := range x {
			x[k] = wirePlainJSON(item)
		}
		return x
	default:
		return x
	}
}

func wirePlainNumber(n json.Number) any {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return string(n)
}

// wirePlainArgs makes a packet's argument list plain (see wirePlain).
func wirePlainArgs(data []any) ([]any, error) {
	out := make([]any, len(data))
	for i, item := range data {
		p, err := wirePlain(item)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func roomsToStrings(set *types.Set[socket.Room]) []string {
	if set == nil || set.Len() == 0 {
		return nil
	}
	keys := set.Keys()
	out := make([]string, len(keys))
	for i, r := range keys {
		out[i] = string(r)
	}
	return out
}

func stringsToRooms(rooms []string) *types.Set[socket.Room] {
	set := types.NewSet[socket.Room]()
	for _, r := range rooms {
		set.Add(socket.Room(r))
	}
	return set
}

func optsToWire(opts *socket.BroadcastOptions) *wireOpts {
	w := &wireOpts{Rooms: roomsToStrings(opts.Rooms), Except: roomsToStrings(opts.Except)}
	if opts.Flags != nil {
		w.Volatile = opts.Flags.Volatile
		w.Compress = opts.Flags.Compress
	}
	return w
}

func optsFromWire(w *wireOpts) *socket.BroadcastOptions {
	if w == nil {
		w = &wireOpts{}
	}
	flags := &socket.BroadcastFlags{}
	flags.Volatile = w.Volatile
	flags.Compress = w.Compress
	return &socket.BroadcastOptions{
		Rooms:  stringsToRooms(w.Rooms),
		Except: stringsToRooms(w.Except),
		Flags:  flags,
	}
}

// remoteSocket is a socket of another instance, as fetchSockets returns it.
type remoteSocket struct {
	id        socket.SocketId
	handshake *socket.Handshake
	rooms     *types.Set[socket.Room]
	data      any
}

var _ socket.SocketDetails = (*remoteSocket)(nil)

func (r *remoteSocket) Id() socket.SocketId          { return r.id }
func (r *remoteSocket) Handshake() *socket.Handshake { return r.handshake }
func (r *remoteSocket) Rooms() *types.Set[socket.Room] {
	return r.rooms
}
func (r *remoteSocket) Data() any { return r.data }
