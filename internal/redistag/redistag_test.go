package redistag

import "testing"

func TestRoom(t *testing.T) {
	for room, want := range map[string]string{
		"lobby":   "{r:lobby}",
		"a:b.c-d": "{r:a:b.c-d}",
		"x}y":     "{r:x}y}",
	} {
		if got := Room(room); got != want {
			t.Errorf("Room(%q) = %q, want %q", room, got, want)
		}
	}
}
