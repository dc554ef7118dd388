package wstransport

import (
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Opcodes a client may send besides those in frame.go (RFC 6455, 5.2).
const (
	opContinuation = 0x0
	opPing         = 0x9
)

// Close status codes this reader sends (RFC 6455, 7.4.1).
const (
	closeNormal      = 1000
	closeProtocol    = 1002
	closeInvalidData = 1007
	closeTooBig      = 1009
)

// frameError is a client's breach of the WebSocket protocol: the connection
// is closed with code after a close frame carrying it.
type frameError struct {
	code int
	msg  string
}

func (e *frameError) Error() string { return "websocket: " + e.msg }

func protocolError(format string, args ...any) error {
	return &frameError{code: closeProtocol, msg: fmt.Sprintf(format, args...)}
}

// frameReader turns the bytes a client sends into WebSocket messages and
// control frames, as gorilla's reader would on the server side: client
// frames must be masked, carry no reserved bits (chatd negotiates no
// extension), and control frames must be whole and at most 125 bytes. It
// holds no buffer between frames, so an idle connection costs it nothing.
type frameReader struct {
	// limit bounds a message's payload in bytes (the engine's
	// maxHttpBufferSize); 0 means no limit.
	limit int64
	// msg is the payload so far of a message sent in fragments, and msgOp
	// its opcode; msgOp is 0 when no fragmented message is under way.
	msg   []byte
	msgOp byte
}

// frame is a complete frame's header; the payload follows at b[hdr:hdr+n].
type frame struct {
	fin  bool
	op   byte
	mask [4]byte
	hdr  int
	n    int
}

// parse reads the frame header at the start of b. It returns ok false when
// b does not hold the whole header yet, and an error for a frame no client
// may send. The length check comes before the payload is there, so that a
// client cannot make the server buffer more than the limit.
func (r *frameReader) parse(b []byte) (f frame, ok bool, err error) {
	if len(b) < 2 {
		return f, false, nil
	}
	f.fin = b[0]&0x80 != 0
	f.op = b[0] & 0x0f
	if rsv := b[0] & 0x70; rsv != 0 {
		return f, false, protocolError("reserved bits 0x%02x set without an extension", rsv)
	}
	if b[1]&0x80 == 0 {
		return f, false, protocolError("a client frame is not masked")
	}
	size := uint64(b[1] & 0x7f)
	f.hdr = 2
	switch size {
	case 126:
		if len(b) < 4 {
			return f, false, nil
		}
		size = uint64(binary.BigEndian.Uint16(b[2:]))
		f.hdr = 4
	case 127:
		if len(b) < 10 {
			return f, false, nil
		}
		size = binary.BigEndian.Uint64(b[2:])
		f.hdr = 10
		if size>>63 != 0 {
			return f, false, protocolError("frame length has its most significant bit set")
		}
	}
	switch f.op {
	case opText, opBinary:
		if r.msgOp != 0 {
			return f, false, protocolError("a new message began before the fragmented one ended")
		}
	case opContinuation:
		if r.msgOp == 0 {
			return f, false, protocolError("a continuation frame without a message to continue")
		}
	case opClose, opPing, opPong:
		if !f.fin {
			return f, false, protocolError("a fragmented control frame")
		}
		if size > 125 {
			return f, false, protocolError("a control frame of %d bytes", size)
		}
	default:
		return f, false, protocolError("unknown opcode %d", f.op)
	}
	if f.op < opClose && r.limit > 0 && size+uint64(len(r.msg)) > uint64(r.limit) {
		return f, false, &frameError{code: closeTooBig, msg: fmt.Sprintf("message larger than %d bytes", r.limit)}
	}
	if len(b) < f.hdr+4 {
		return f, false, nil
	}
	copy(f.mask[:], b[f.hdr:])
	f.hdr += 4
	f.n = int(size)
	return f, true, nil
}

// feed takes bytes read from the client and calls on for every complete
// message (opText or opBinary) and control frame in them, in order, with a
// payload of its own. It returns the bytes of a frame not yet complete,
// which the caller passes again, followed by more, to the next feed.
func (r *frameReader) feed(b []byte, on func(op byte, payload []byte) error) ([]byte, error) {
	for len(b) > 0 {
		f, ok, err := r.parse(b)
		if err != nil {
			return nil, err
		}
		if !ok || len(b)-f.hdr < f.n {
			return b, nil
		}
		payload := unmask(b[f.hdr:f.hdr+f.n], f.mask)
		b = b[f.hdr+f.n:]
		switch {
		case f.op >= opClose:
			err = on(f.op, payload)
		case f.op != opContinuation && f.fin:
			err = on(f.op, payload)
		case f.op != opContinuation:
			r.msgOp, r.msg = f.op, payload
		default:
			r.msg = append(r.msg, payload...)
			if f.fin {
				op, msg := r.msgOp, r.msg
				r.msgOp, r.msg = 0, nil
				err = on(op, msg)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// unmask returns a copy of payload with the client's mask removed.
func unmask(payload []byte, key [4]byte) []byte {
	out := make([]byte, len(payload))
	k := binary.LittleEndian.Uint32(key[:])
	k8 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(payload); i += 8 {
		binary.LittleEndian.PutUint64(out[i:], binary.LittleEndian.Uint64(payload[i:])^k8)
	}
	for ; i < len(payload); i++ {
		out[i] = payload[i] ^ key[i&3]
	}
	return out
}

// closePayload checks a close frame's payload and returns the code to echo:
// no code means a normal close, a code a peer may not send or a reason that
// is not UTF-8 is an error.
func closePayload(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return closeNormal, nil
	case len(p) == 1:
		return 0, protocolError("a close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, protocolError("close code %d", code)
	}
	if !utf8.Valid(p[2:]) {
		return 0, &frameError{code: closeInvalidData, msg: "a close reason that is not UTF-8"}
	}
	return code, nil
}

// validCloseCode reports whether a peer may send code (RFC 6455, 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// errCut is what a read reports for a connection that ended without a close
// frame, between frames or within one: what gorilla reports, an abnormal
// closure (1006), which the engine takes as a plain close.
var errCut = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}
