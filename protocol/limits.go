package protocol

// Default limits shared by config (the defaults of its keys) and server
// (the defaults of zero fields in server.Config). The largest message text
// has its default in package rooms (rooms.DefaultMessageBytes), where the
// rule is applied.
const (
	// DefaultPayloadBytes is the largest socket.io packet a client may
	// send, in bytes.
	DefaultPayloadBytes = 64 << 10
	// DefaultRecoveryMaxPackets is the most packets one session restore
	// replays; a client that missed more gets a fresh session. The
	// single-instance recovery adapter and the Redis adapter both use it.
	DefaultRecoveryMaxPackets = 1000
	// DefaultRecoveryBufferLength is how many recent packets a single
	// instance keeps for restores, in packets; the Redis adapter keeps
	// about as many in its recovery stream.
	DefaultRecoveryBufferLength = 10000
)
