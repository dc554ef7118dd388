package rooms

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// sendN sends n messages from u to room and returns their ids.
func sendN(t *testing.T, c *Chat, u User, room string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		m, _, err := c.Send(context.Background(), u, Send{Room: room, Text: fmt.Sprintf("%s %d", room, i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.ID
	}
	return ids
}

func TestSyncAnswersEachRoom(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{RoomsPerUser: 10}, 5)
	for _, r := range []string{"a", "b", "c", "d"} {
		if _, err := c.Join(ctx, alice, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Join(ctx, bob, "bobs"); err != nil {
		t.Fatal(err)
	}
	a := sendN(t, c, alice, "a", 3)
	b := sendN(t, c, alice, "b", 8) // history keeps the last 5: b[0..2] dropped
	sendN(t, c, alice, "c", 2)

	got, err := c.Sync(ctx, "alice", SyncQuery{Rooms: map[string]string{
		"a":        a[0],
		"b":        b[0],
		"c":        "",
		"d":        "",
		"bobs":     "",
		"user:bob": "",
		"e":        "not-an-id",
	}})
	if err != nil {
		t.Fatal(err)
	}
	texts := func(r SyncRoom) string {
		var out []string
		for _, m := range r.Messages {
			out = append(out, m.Text)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		room      string
		want      string
		gap, more bool
		code      Code
	}{
		{"a", "a 1,a 2", false, false, ""},
		{"b", "b 3,b 4,b 5,b 6,b 7", true, false, ""},
		{"c", "c 0,c 1", false, false, ""},
		{"d", "", false, false, ""},
		{"bobs", "", false, false, CodeForbidden},
		{"user:bob", "", false, false, CodeBadRequest},
		{"e", "", false, false, CodeBadRequest},
	}
	for _, tt := range tests {
		r, ok := got[tt.room]
		if !ok {
			t.Errorf("%s: missing from the answer", tt.room)
			continue
		}
		if tt.code != "" {
			if r.Err == nil || r.Err.Code != tt.code {
				t.Errorf("%s: error %v, want %s", tt.room, r.Err, tt.code)
			}
			continue
		}
		if r.Err != nil || texts(r) != tt.want || r.Gap != tt.gap || r.More != tt.more || r.Messages == nil {
			t.Errorf("%s: got %q gap=%v more=%v err=%v; want %q gap=%v more=%v", tt.room, texts(r), r.Gap, r.More, r.Err, tt.want, tt.gap, tt.more)
		}
	}
}

func TestSyncBoundsPerRoomAndInTotal(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{RoomsPerUser: 100}, 100)
	q := SyncQuery{Rooms: map[string]string{}, Limit: 100}
	for i := range 12 {
		room := fmt.Sprintf("r%02d", i)
		if _, err := c.Join(ctx, alice, room); err != nil {
			t.Fatal(err)
		}
		first := sendN(t, c, alice, room, 100)[0]
		q.Rooms[room] = first // 99 messages missed in each room
	}
	got, err := c.Sync(ctx, "alice", q)
	if err != nil {
		t.Fatal(err)
	}
	total, cut := 0, 0
	for room, r := range got {
		if r.Err != nil {
			t.Fatalf("%s: %v", room, r.Err)
		}
		total += len(r.Messages)
		if r.More {
			cut++
		}
	}
	if total > MaxSyncMessages {
		t.Fatalf("answered %d messages, more than the bound %d", total, MaxSyncMessages)
	}
	if total != 12*99 && cut == 0 {
		t.Fatalf("answered %d of %d messages but no room says more", total, 12*99)
	}
	// Following "more" with sync from the last id given fetches the rest.
	for round := 0; cut > 0; round++ {
		if round > 5 {
			t.Fatal("sync did not converge")
		}
		next := SyncQuery{Rooms: map[string]string{}, Limit: 100}
		for room, r := range got {
			if r.More {
				after := q.Rooms[room]
				if n := len(r.Messages); n > 0 {
					after = r.Messages[n-1].ID
				}
				next.Rooms[room], q.Rooms[room] = after, after
			}
		}
		if got, err = c.Sync(ctx, "alice", next); err != nil {
			t.Fatal(err)
		}
		cut = 0
		for _, r := range got {
			total += len(r.Messages)
			if r.More {
				cut++
			}
		}
	}
	if total != 12*99 {
		t.Fatalf("caught up on %d messages, want %d", total, 12*99)
	}
}

func TestSyncRefusesTooManyRooms(t *testing.T) {
	c := newTestChat(t, Limits{RoomsPerUser: 2}, 10)
	_, err := c.Sync(context.Background(), "alice", SyncQuery{Rooms: map[string]string{"a": "", "b": "", "c": ""}})
	if codeOf(err) != CodeBadRequest {
		t.Fatalf("err = %v, want bad_request", err)
	}
	_, err = c.Sync(context.Background(), "alice", SyncQuery{Rooms: map[string]string{"a": ""}, Limit: 101})
	if codeOf(err) != CodeBadRequest {
		t.Fatalf("limit 101: err = %v, want bad_request", err)
	}
}
