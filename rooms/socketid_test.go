package rooms

import (
	"strings"
	"testing"
)

func TestRoomNamesCannotBeSocketIDs(t *testing.T) {
	tests := []struct {
		room     string
		socketID bool
	}{
		{"Yk3Rr_p9cWqz-Xh0AAAB1f2A", true},
		{strings.Repeat("a", 24), true},
		{strings.Repeat("a", 23), false},
		{strings.Repeat("a", 25), false},
		{"Yk3Rr_p9cWqz.Xh0AAAB1f2A", false},
		{"Yk3Rr_p9cWqz:Xh0AAAB1f2A", false},
		{"general", false},
	}
	for _, tt := range tests {
		if got := IsSocketID(tt.room); got != tt.socketID {
			t.Errorf("IsSocketID(%q) = %v, want %v", tt.room, got, tt.socketID)
		}
		err := ValidateRoom(tt.room)
		if tt.socketID {
			if e := ErrorOf(err); e == nil || e.Code != CodeBadRequest || !strings.Contains(e.Message, "reserved for socket ids") {
				t.Errorf("ValidateRoom(%q) = %v, want bad_request: reserved for socket ids", tt.room, err)
			}
		} else if err != nil {
			t.Errorf("ValidateRoom(%q) = %v, want nil", tt.room, err)
		}
	}
}
