package redistag

import "testing"

func TestRoom(t *testing.T) {
	for room, want := range map[string]string{
		"lobby": "{r:lobby}",
		"":      "{r:}",
		"a}b":   "{r:a}b}",
		"{x}":   "{r:{x}}",
	} {
		if got := Room(room); got != want {
			t.Errorf("Room(%q) = %q, want %q", room, got, want)
		}
	}
}
