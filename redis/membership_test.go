package redis

import (
	"errors"
	"slices"
	"testing"

	"github.com/chatd/chatd/rooms"
)

// storeMembershipState is what a membership store says of one user and
// room: listed in the user's rooms, a member for IsMember and Members.
type storeMembershipState struct{ listed, member, inMembers bool }

func storeMembershipOf(t *testing.T, m *RedisMembership, userID, room string) storeMembershipState {
	t.Helper()
	ctx := t.Context()
	rs, err := m.Rooms(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	member, err := m.IsMember(ctx, userID, room)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := m.Members(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	return storeMembershipState{slices.Contains(rs, room), member, slices.Contains(ms, userID)}
}

// TestRedisMembershipInterrupted: a join or leave that stopped after its
// user-side script leaves the user side ahead, and the next join or leave
// of that user and room repairs it.
func TestRedisMembershipInterrupted(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	m, err := NewRedisMembership(client, RedisMembershipOptions{Prefix: storeNewPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	in, out := storeMembershipState{true, true, true}, storeMembershipState{}

	t.Run("join", func(t *testing.T) {
		if _, err := m.userStep(ctx, membershipJoin, "alice", "a", 2); err != nil {
			t.Fatal(err)
		}
		if got, want := storeMembershipOf(t, m, "alice", "a"), (storeMembershipState{listed: true}); got != want {
			t.Fatalf("after an interrupted join: %+v, want %+v (listed, not yet a member)", got, want)
		}
		// The half-joined room counts towards the limit.
		mustJoinRedis(t, m, "alice", "b", 2)
		if _, err := m.Join(ctx, "alice", "c", 2); !errors.Is(err, rooms.ErrTooManyRooms) {
			t.Fatalf("a third room with maxRooms 2 and one half-joined: err = %v, want ErrTooManyRooms", err)
		}
		// Joining again completes it and reports the change once.
		c, err := m.JoinCounted(ctx, "alice", "a", 2)
		if err != nil || c != (rooms.Change{Member: true, Room: true}) {
			t.Fatalf("join after the interrupted one = %+v, %v; want the member and the room added", c, err)
		}
		if got := storeMembershipOf(t, m, "alice", "a"); got != in {
			t.Fatalf("after the repairing join: %+v, want %+v", got, in)
		}
	})

	t.Run("leave", func(t *testing.T) {
		if _, err := m.userStep(ctx, membershipLeave, "alice", "a", 0); err != nil {
			t.Fatal(err)
		}
		if got, want := storeMembershipOf(t, m, "alice", "a"), (storeMembershipState{member: true, inMembers: true}); got != want {
			t.Fatalf("after an interrupted leave: %+v, want %+v (not listed, still a member)", got, want)
		}
		c, err := m.LeaveCounted(ctx, "alice", "a")
		if err != nil || c != (rooms.Change{Member: true, Room: true}) {
			t.Fatalf("leave after the interrupted one = %+v, %v; want the member and the room gone", c, err)
		}
		if got := storeMembershipOf(t, m, "alice", "a"); got != out {
			t.Fatalf("after the repairing leave: %+v, want %+v", got, out)
		}
	})

	t.Run("leave repairs a join", func(t *testing.T) {
		if _, err := m.userStep(ctx, membershipJoin, "bob", "a", 2); err != nil {
			t.Fatal(err)
		}
		if c, err := m.LeaveCounted(ctx, "bob", "a"); err != nil || c != (rooms.Change{}) {
			t.Fatalf("leaving a half-joined room = %+v, %v; want no change for the room", c, err)
		}
		if got := storeMembershipOf(t, m, "bob", "a"); got != out {
			t.Fatalf("after the leave: %+v, want %+v", got, out)
		}
	})
}

// TestRedisMembershipStepsOutOfOrder: the room-side steps of a join and a
// leave that arrive in the other order than their user-side steps end as
// the later user-side step left it.
func TestRedisMembershipStepsOutOfOrder(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	m, err := NewRedisMembership(client, RedisMembershipOptions{Prefix: storeNewPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		ops      [2]string // user-side order; the room side runs them reversed
		member   bool
		reported [2]rooms.Change
	}{
		{"join then leave", [2]string{membershipJoin, membershipLeave}, false, [2]rooms.Change{{}, {}}},
		{"leave then join", [2]string{membershipLeave, membershipJoin}, true, [2]rooms.Change{{}, {Member: true, Room: true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			room := "r-" + c.ops[0]
			var versions [2]string
			for i, op := range c.ops {
				if versions[i], err = m.userStep(ctx, op, "alice", room, 10); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range []int{1, 0} {
				got, err := m.roomStep(ctx, c.ops[i], "alice", room, versions[i])
				if err != nil || got != c.reported[i] {
					t.Errorf("room step of the %s = %+v, %v; want %+v", c.ops[i], got, err, c.reported[i])
				}
			}
			want := storeMembershipState{c.member, c.member, c.member}
			if got := storeMembershipOf(t, m, "alice", room); got != want {
				t.Fatalf("after %s arrived reversed: %+v, want %+v", c.name, got, want)
			}
		})
	}
}

// TestRedisMembershipForgetsOldLeaves: a room remembers a leave for
// membershipLeftTTL only, and the whole set of leaves expires.
func TestRedisMembershipForgetsOldLeaves(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	m, err := NewRedisMembership(client, RedisMembershipOptions{Prefix: storeNewPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	// A leave from long ago (version 1), then a fresh one of someone else.
	if _, err := m.roomStep(ctx, membershipLeave, "old", "r", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Leave(ctx, "new", "r"); err != nil {
		t.Fatal(err)
	}
	left, err := client.ZRange(ctx, m.leftKey("r"), 0, -1).Result()
	if err != nil || !slices.Equal(left, []string{"new"}) {
		t.Fatalf("the room remembers the leaves of %q (%v), want only the recent one", left, err)
	}
	ttl, err := client.PTTL(ctx, m.leftKey("r")).Result()
	if err != nil || ttl <= 0 || ttl > membershipLeftTTL {
		t.Fatalf("the leaves expire in %v (%v), want at most %v", ttl, err, membershipLeftTTL)
	}
	// A user without rooms keeps the clock for a while only.
	if ttl, err := client.PTTL(ctx, m.userClockKey("new")).Result(); err != nil || ttl <= 0 || ttl > membershipIdleClockTTL {
		t.Fatalf("the clock of a user without rooms expires in %v (%v), want at most %v", ttl, err, membershipIdleClockTTL)
	}
	mustJoinRedis(t, m, "new", "r", 10)
	if ttl, err := client.PTTL(ctx, m.userClockKey("new")).Result(); err != nil || ttl != -1 {
		t.Fatalf("the clock of a user with rooms expires in %v (%v), want never", ttl, err)
	}
}

func mustJoinRedis(t *testing.T, m *RedisMembership, userID, room string, maxRooms int) {
	t.Helper()
	if ok, err := m.Join(t.Context(), userID, room, maxRooms); err != nil || !ok {
		t.Fatalf("Join(%q, %q) = %v, %v; want a new membership", userID, room, ok, err)
	}
}
