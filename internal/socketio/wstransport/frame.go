package wstransport

import "encoding/binary"

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPong   = 0xA
)

// appendFrame appends to dst one unfragmented, unmasked WebSocket frame (as
// a server sends them) with the given opcode, whose payload is prefix
// followed by payload.
func appendFrame(dst []byte, opcode byte, prefix byte, hasPrefix bool, payload []byte) []byte {
	n := len(payload)
	if hasPrefix {
		n++
	}
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if hasPrefix {
		dst = append(dst, prefix)
	}
	return append(dst, payload...)
}

// frameSize is the length of a frame whose payload is n bytes.
func frameSize(n int) int {
	switch {
	case n < 126:
		return 2 + n
	case n <= 0xFFFF:
		return 4 + n
	default:
		return 10 + n
	}
}

// MessageFrame returns the WebSocket text frame that carries an Engine.IO v4
// "message" packet (type '4') holding the encoded socket.io packet: what the
// Engine.IO WebSocket transport would write for it. chatd builds it once per
// broadcast and hands the same bytes to every recipient's WriteFrame.
func MessageFrame(encoded []byte) []byte {
	return appendFrame(make([]byte, 0, frameSize(len(encoded)+1)), opText, '4', true, encoded)
}

// closeFrame returns a close frame with the given status code and no reason.
func closeFrame(code int) []byte {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], uint16(code)) //nolint:gosec // close codes are 1000 to 4999
	return appendFrame(make([]byte, 0, 4), opClose, 0, false, p[:])
}
