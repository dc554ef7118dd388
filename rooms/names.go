package rooms

import (
	"unicode/utf8"
)

// MaxRoomLength is the longest room name, in bytes (all allowed characters
// are ASCII).
const MaxRoomLength = 64

// UserRoomPrefix starts the reserved room names. chatd puts every socket of a
// user in the room "user:<userId>" so that it can reach all of them at once,
// on every instance; clients may not join such rooms themselves.
const UserRoomPrefix = "user:"

// MaxClientMsgIDLength is the longest clientMsgId, in characters.
const MaxClientMsgIDLength = 64

// ValidateRoom checks a room name against the protocol's rules: 1 to 64
// characters of A-Z a-z 0-9 _ - . :, not starting with "user:" and not of
// the shape of a socket id (see [IsSocketID]).
func ValidateRoom(room string) error {
	if room == "" {
		return Errorf(CodeBadRequest, "room must not be empty")
	}
	if len(room) > MaxRoomLength {
		return Errorf(CodeBadRequest, "room must be at most %d characters", MaxRoomLength)
	}
	for i := 0; i < len(room); i++ {
		if !roomChar(room[i]) {
			return Errorf(CodeBadRequest, "room may only contain A-Z, a-z, 0-9, '_', '-', '.' and ':'")
		}
	}
	if len(room) >= len(UserRoomPrefix) && room[:len(UserRoomPrefix)] == UserRoomPrefix {
		return Errorf(CodeBadRequest, "room names starting with %q are reserved", UserRoomPrefix)
	}
	if IsSocketID(room) {
		return Errorf(CodeBadRequest, "room names of %d characters that are all letters, digits, '-' and '_' are reserved for socket ids; add a '.' or ':', or change the length", SocketIDLength)
	}
	return nil
}

func roomChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '_', c == '-', c == '.', c == ':':
		return true
	}
	return false
}

// ValidateText checks a message text: valid UTF-8, not empty, at most
// maxBytes bytes.
func ValidateText(text string, maxBytes int) error {
	if text == "" {
		return Errorf(CodeBadRequest, "text must not be empty")
	}
	if !utf8.ValidString(text) {
		return Errorf(CodeBadRequest, "text must be valid UTF-8")
	}
	if len(text) > maxBytes {
		return Errorf(CodeTooLarge, "text is %d bytes; the limit is %d bytes", len(text), maxBytes)
	}
	return nil
}

// ValidateClientMsgID checks an optional clientMsgId: empty (absent) or 1 to
// 64 characters of valid UTF-8.
func ValidateClientMsgID(id string) error {
	if id == "" {
		return nil
	}
	if !utf8.ValidString(id) || utf8.RuneCountInString(id) > MaxClientMsgIDLength {
		return Errorf(CodeBadRequest, "clientMsgId must be 1 to %d characters", MaxClientMsgIDLength)
	}
	return nil
}

// ValidateUserID checks a user id as it comes from a token, the dev-mode auth
// or the server API: 1 to 128 bytes of valid UTF-8 without control characters.
func ValidateUserID(id string) error {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return Errorf(CodeBadRequest, "userId must be 1 to 128 bytes of UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return Errorf(CodeBadRequest, "userId must not contain control characters")
		}
	}
	return nil
}
