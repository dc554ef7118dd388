package rooms

// SocketIDLength is the length of a socket.io socket id: 18 random bytes in
// unpadded base64url, 24 characters.
const SocketIDLength = 24

// IsSocketID reports whether s has the shape of a socket.io socket id: 24
// characters of A-Z a-z 0-9 - _. Every socket is alone in the socket.io room
// named by its id, so no chat room may have this shape (see
// [ValidateRoom]), and a server API target naming a socket must.
func IsSocketID(s string) bool {
	if len(s) != SocketIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
