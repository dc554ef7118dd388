// Package roomstest checks that an implementation of the stores of package
// rooms ([rooms.Membership], [rooms.Presence], [rooms.History] and
// [rooms.Idempotency]) behaves as their documentation says. The in-memory
// stores and the Redis stores of package cluster both run [TestStores], so
// that chatd behaves the same on one instance and on many.
package roomstest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/chatd/chatd/rooms"
)

// Options describes the stores that a [TestStores] factory makes.
type Options struct {
	// HistorySize is the number of messages per room the factory's History
	// keeps, 4 to [rooms.MaxHistoryLimit]; small sizes keep the test fast.
	HistorySize int
	// MemberHistory says the factory's History is a [rooms.MemberHistory]:
	// its AppendIfMember is checked too.
	MemberHistory bool
	// SendStore says the factory's History is a [rooms.SendStore]: its
	// StoreSend is checked too, against the factory's Membership and
	// Idempotency.
	SendStore bool
}

// TestStores runs the conformance tests. newStores makes a fresh, empty set
// of stores for each subtest (stores of one call must not see the data of
// another) and releases them with t.Cleanup.
func TestStores(t *testing.T, newStores func(t *testing.T) rooms.Stores, opts Options) {
	t.Helper()
	if opts.HistorySize < 4 || opts.HistorySize > rooms.MaxHistoryLimit {
		t.Fatalf("roomstest: Options.HistorySize %d must be 4 to %d", opts.HistorySize, rooms.MaxHistoryLimit)
	}
	groups := []struct {
		name  string
		tests []storeTest
	}{
		{"Membership", membershipTests},
		{"Presence", presenceTests},
		{"History", historyTests},
		{"Idempotency", idempotencyTests},
	}
	if opts.MemberHistory {
		groups = append(groups, struct {
			name  string
			tests []storeTest
		}{"MemberHistory", memberHistoryTests})
	}
	if opts.SendStore {
		groups = append(groups, struct {
			name  string
			tests []storeTest
		}{"SendStore", sendStoreTests})
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, newStores(t), opts)
				})
			}
		})
	}
}

// storeTest is one behaviour, checked on fresh stores.
type storeTest struct {
	name string
	run  func(t *testing.T, st rooms.Stores, opts Options)
}

// parallel runs f(0) to f(n-1) at once and waits for all of them.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// ---- Membership ----

var membershipTests = []storeTest{
	{"join and leave are idempotent", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, m := t.Context(), st.Membership
		steps := []struct {
			op     string // "join", "leave" or "member"
			room   string
			want   bool
			member bool // membership in the room after the step
		}{
			{"member", "lobby", false, false},
			{"join", "lobby", true, true},
			{"join", "lobby", false, true},
			{"member", "lobby", true, true},
			{"leave", "lobby", true, false},
			{"leave", "lobby", false, false},
			{"leave", "never-joined", false, false},
			{"join", "lobby", true, true},
		}
		for i, s := range steps {
			var got bool
			var err error
			switch s.op {
			case "join":
				got, err = m.Join(ctx, "alice", s.room, 10)
			case "leave":
				got, err = m.Leave(ctx, "alice", s.room)
			case "member":
				got, err = m.IsMember(ctx, "alice", s.room)
			}
			if err != nil {
				t.Fatalf("step %d: %s %q: %v", i, s.op, s.room, err)
			}
			if got != s.want {
				t.Fatalf("step %d: %s %q = %v, want %v", i, s.op, s.room, got, s.want)
			}
			member := mustIsMember(t, m, "alice", s.room)
			if member != s.member {
				t.Fatalf("step %d: after %s %q IsMember = %v, want %v", i, s.op, s.room, member, s.member)
			}
			wantMembers := []string{}
			if s.member {
				wantMembers = []string{"alice"}
			}
			if got := mustMembers(t, m, s.room); !slices.Equal(got, wantMembers) {
				t.Fatalf("step %d: after %s %q Members = %q, want %q", i, s.op, s.room, got, wantMembers)
			}
		}
	}},
	{"rooms and members are sorted", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, m := t.Context(), st.Membership
		for _, r := range []string{"zeta", "alpha", "mid:dle", "Beta", "alpha.2"} {
			mustJoin(t, m, "alice", r, 10)
		}
		for _, u := range []string{"u3", "u1", "ünï", "u2"} {
			mustJoin(t, m, u, "lobby", 10)
		}
		if got, want := mustRooms(t, m, "alice"), []string{"Beta", "alpha", "alpha.2", "mid:dle", "zeta"}; !slices.Equal(got, want) {
			t.Errorf("Rooms(alice) = %q, want %q", got, want)
		}
		if got, want := mustMembers(t, m, "lobby"), []string{"u1", "u2", "u3", "ünï"}; !slices.Equal(got, want) {
			t.Errorf("Members(lobby) = %q, want %q", got, want)
		}
		if _, err := m.Leave(ctx, "u2", "lobby"); err != nil {
			t.Fatal(err)
		}
		if got, want := mustMembers(t, m, "lobby"), []string{"u1", "u3", "ünï"}; !slices.Equal(got, want) {
			t.Errorf("after u2 left, Members(lobby) = %q, want %q", got, want)
		}
	}},
	{"nobody and nothing are empty lists", func(t *testing.T, st rooms.Stores, _ Options) {
		// Empty lists reach clients as JSON; they must be [] and not null.
		if got := mustRooms(t, st.Membership, "nobody"); got == nil || len(got) != 0 {
			t.Errorf("Rooms of a user without rooms = %#v, want an empty non-nil list", got)
		}
		if got := mustMembers(t, st.Membership, "empty"); got == nil || len(got) != 0 {
			t.Errorf("Members of an empty room = %#v, want an empty non-nil list", got)
		}
	}},
	{"maxRooms limits joins", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, m := t.Context(), st.Membership
		mustJoin(t, m, "alice", "a", 2)
		mustJoin(t, m, "alice", "b", 2)
		joined, err := m.Join(ctx, "alice", "c", 2)
		if !errors.Is(err, rooms.ErrTooManyRooms) || joined {
			t.Fatalf("third join with maxRooms 2 = %v, %v; want false, ErrTooManyRooms", joined, err)
		}
		if mustIsMember(t, m, "alice", "c") || slices.Contains(mustMembers(t, m, "c"), "alice") {
			t.Fatal("a refused join made alice a member of c")
		}
		// Joining a room one is in already is fine at the limit.
		joined, err = m.Join(ctx, "alice", "a", 2)
		if err != nil || joined {
			t.Fatalf("re-joining a at the limit = %v, %v; want false, nil", joined, err)
		}
		// A lower limit than the rooms one has refuses new rooms only.
		if _, err := m.Join(ctx, "alice", "c", 1); !errors.Is(err, rooms.ErrTooManyRooms) {
			t.Fatalf("join over a lowered limit: err = %v, want ErrTooManyRooms", err)
		}
		if joined, err := m.Join(ctx, "alice", "b", 1); err != nil || joined {
			t.Fatalf("re-joining b over a lowered limit = %v, %v; want false, nil", joined, err)
		}
		// The limit is per user.
		mustJoin(t, m, "bob", "c", 2)
		// Leaving makes room.
		if _, err := m.Leave(ctx, "alice", "a"); err != nil {
			t.Fatal(err)
		}
		mustJoin(t, m, "alice", "c", 2)
		if got, want := mustRooms(t, m, "alice"), []string{"b", "c"}; !slices.Equal(got, want) {
			t.Errorf("Rooms(alice) = %q, want %q", got, want)
		}
		if got, want := mustMembers(t, m, "c"), []string{"alice", "bob"}; !slices.Equal(got, want) {
			t.Errorf("Members(c) = %q, want %q", got, want)
		}
	}},
	{"a room's first join and last leave are counted once", func(t *testing.T, st rooms.Stores, _ Options) {
		rc, ok := st.Membership.(rooms.RoomCounting)
		if !ok {
			t.Skip("the store does not count rooms")
		}
		ctx := t.Context()
		steps := []struct {
			op, user string
			want     rooms.Change
		}{
			{"join", "alice", rooms.Change{Member: true, Room: true}},
			{"join", "alice", rooms.Change{}},
			{"join", "bob", rooms.Change{Member: true}},
			{"leave", "alice", rooms.Change{Member: true}},
			{"leave", "alice", rooms.Change{}},
			{"leave", "bob", rooms.Change{Member: true, Room: true}},
			{"leave", "bob", rooms.Change{}},
			{"join", "bob", rooms.Change{Member: true, Room: true}},
		}
		for i, s := range steps {
			var got rooms.Change
			var err error
			if s.op == "join" {
				got, err = rc.JoinCounted(ctx, s.user, "counted", 10)
			} else {
				got, err = rc.LeaveCounted(ctx, s.user, "counted")
			}
			if err != nil || got != s.want {
				t.Fatalf("step %d: %s %s = %+v, %v; want %+v", i, s.op, s.user, got, err, s.want)
			}
		}
		// Of many users joining an empty room at once, one is its first
		// member; of all leaving at once, one is its last.
		const n = 8
		var mu sync.Mutex
		firsts, lasts := 0, 0
		if _, err := rc.LeaveCounted(ctx, "bob", "counted"); err != nil {
			t.Fatal(err)
		}
		parallel(n, func(i int) {
			c, err := rc.JoinCounted(ctx, fmt.Sprintf("u%d", i), "counted", 10)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			if c.Room {
				firsts++
			}
		})
		parallel(n, func(i int) {
			c, err := rc.LeaveCounted(ctx, fmt.Sprintf("u%d", i), "counted")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			if c.Room {
				lasts++
			}
		})
		if firsts != 1 || lasts != 1 {
			t.Fatalf("%d concurrent joins reported %d first members, their leaves %d last ones; want 1 and 1", n, firsts, lasts)
		}
	}},
	{"maxRooms 0 refuses every new room", func(t *testing.T, st rooms.Stores, _ Options) {
		if _, err := st.Membership.Join(t.Context(), "alice", "a", 0); !errors.Is(err, rooms.ErrTooManyRooms) {
			t.Fatalf("join with maxRooms 0: err = %v, want ErrTooManyRooms", err)
		}
	}},
	{"concurrent joins and leaves of one membership end agreeing", func(t *testing.T, st rooms.Stores, _ Options) {
		// Two tabs of a user joining and leaving at once, many times: after
		// each round, whatever its outcome, the user's rooms, the room's
		// members and IsMember tell one story.
		ctx, m := t.Context(), st.Membership
		for round := range 20 {
			var mu sync.Mutex
			var errs []error
			parallel(4, func(i int) {
				var err error
				if (i+round)%2 == 0 {
					_, err = m.Join(ctx, "alice", "r", 10)
				} else {
					_, err = m.Leave(ctx, "alice", "r")
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			inRooms := slices.Contains(mustRooms(t, m, "alice"), "r")
			inMembers := slices.Contains(mustMembers(t, m, "r"), "alice")
			if member := mustIsMember(t, m, "alice", "r"); member != inRooms || member != inMembers {
				t.Fatalf("round %d: IsMember %v, in Rooms %v, in Members %v; want one answer", round, member, inRooms, inMembers)
			}
		}
	}},
	{"concurrent joins respect maxRooms", func(t *testing.T, st rooms.Stores, _ Options) {
		const limit, tries = 3, 12
		ctx, m := t.Context(), st.Membership
		var mu sync.Mutex
		var joined, refused int
		var errs []error
		parallel(tries, func(i int) {
			ok, err := m.Join(ctx, "alice", fmt.Sprintf("room%02d", i), limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, rooms.ErrTooManyRooms):
				refused++
			case err != nil:
				errs = append(errs, err)
			case ok:
				joined++
			}
		})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if joined != limit || refused != tries-limit {
			t.Fatalf("%d concurrent joins with maxRooms %d: %d joined, %d refused", tries, limit, joined, refused)
		}
		if got := mustRooms(t, m, "alice"); len(got) != limit {
			t.Fatalf("Rooms(alice) = %q, want %d rooms", got, limit)
		}
	}},
}

func mustJoin(t *testing.T, m rooms.Membership, userID, room string, maxRooms int) {
	t.Helper()
	joined, err := m.Join(t.Context(), userID, room, maxRooms)
	if err != nil || !joined {
		t.Fatalf("Join(%q, %q, %d) = %v, %v; want true, nil", userID, room, maxRooms, joined, err)
	}
}

func mustIsMember(t *testing.T, m rooms.Membership, userID, room string) bool {
	t.Helper()
	ok, err := m.IsMember(t.Context(), userID, room)
	if err != nil {
		t.Fatalf("IsMember(%q, %q): %v", userID, room, err)
	}
	return ok
}

func mustRooms(t *testing.T, m rooms.Membership, userID string) []string {
	t.Helper()
	rs, err := m.Rooms(t.Context(), userID)
	if err != nil {
		t.Fatalf("Rooms(%q): %v", userID, err)
	}
	return rs
}

func mustMembers(t *testing.T, m rooms.Membership, room string) []string {
	t.Helper()
	us, err := m.Members(t.Context(), room)
	if err != nil {
		t.Fatalf("Members(%q): %v", room, err)
	}
	return us
}

// ---- Presence ----

var (
	alice = rooms.User{ID: "alice", Name: "Alice"}
	bob   = rooms.User{ID: "bob", Name: "Bob Ünïcode"}
	carol = rooms.User{ID: "carol", Name: "carol"}
)

var presenceTests = []storeTest{
	{"one socket: online then offline", func(t *testing.T, st rooms.Stores, _ Options) {
		p := st.Presence
		if got := mustOnline(t, p, "alice"); len(got) != 0 {
			t.Fatalf("before connecting, Online = %v", got)
		}
		mustConnect(t, p, alice, "s1", true)
		if got := mustOnline(t, p, "alice"); !slices.Equal(got, []rooms.User{alice}) {
			t.Fatalf("Online = %v, want [alice]", got)
		}
		mustDisconnect(t, p, "alice", "s1", true)
		if got := mustOnline(t, p, "alice"); got == nil || len(got) != 0 {
			t.Fatalf("after the last socket left, Online = %#v, want an empty non-nil list", got)
		}
		// Online again later: first again.
		mustConnect(t, p, alice, "s2", true)
	}},
	{"several sockets: first and last", func(t *testing.T, st rooms.Stores, _ Options) {
		p := st.Presence
		mustConnect(t, p, alice, "s1", true)
		mustConnect(t, p, alice, "s2", false)
		mustConnect(t, p, alice, "s3", false)
		mustDisconnect(t, p, "alice", "s2", false)
		mustDisconnect(t, p, "alice", "s1", false)
		if got := mustOnline(t, p, "alice"); !slices.Equal(got, []rooms.User{alice}) {
			t.Fatalf("with one socket left, Online = %v, want [alice]", got)
		}
		mustDisconnect(t, p, "alice", "s3", true)
		if got := mustOnline(t, p, "alice"); len(got) != 0 {
			t.Fatalf("with no socket left, Online = %v", got)
		}
	}},
	{"several users are independent", func(t *testing.T, st rooms.Stores, _ Options) {
		p := st.Presence
		mustConnect(t, p, alice, "s1", true)
		mustConnect(t, p, bob, "s2", true)
		mustConnect(t, p, bob, "s3", false)
		mustDisconnect(t, p, "alice", "s1", true)
		if got := mustOnline(t, p, "alice", "bob"); !slices.Equal(got, []rooms.User{bob}) {
			t.Fatalf("Online(alice, bob) = %v, want [bob]", got)
		}
		mustDisconnect(t, p, "bob", "s2", false)
		mustDisconnect(t, p, "bob", "s3", true)
	}},
	{"Online filters and keeps the order given", func(t *testing.T, st rooms.Stores, _ Options) {
		p := st.Presence
		mustConnect(t, p, carol, "s1", true)
		mustConnect(t, p, alice, "s2", true)
		mustConnect(t, p, bob, "s3", true)
		mustDisconnect(t, p, "bob", "s3", true)
		cases := []struct {
			ids  []string
			want []rooms.User
		}{
			{[]string{"alice", "bob", "carol"}, []rooms.User{alice, carol}},
			{[]string{"carol", "alice"}, []rooms.User{carol, alice}},
			{[]string{"bob", "dave"}, []rooms.User{}},
			{nil, []rooms.User{}},
		}
		for _, c := range cases {
			got := mustOnline(t, p, c.ids...)
			if got == nil || !slices.Equal(got, c.want) {
				t.Errorf("Online(%q) = %#v, want %v", c.ids, got, c.want)
			}
		}
	}},
	{"disconnecting an unknown socket changes nothing", func(t *testing.T, st rooms.Stores, _ Options) {
		p := st.Presence
		mustDisconnect(t, p, "alice", "nope", false)
		mustConnect(t, p, alice, "s1", true)
		mustDisconnect(t, p, "alice", "nope", false)
		mustDisconnect(t, p, "bob", "s1", false) // another user's socket
		if got := mustOnline(t, p, "alice"); !slices.Equal(got, []rooms.User{alice}) {
			t.Fatalf("Online = %v, want [alice]", got)
		}
		mustDisconnect(t, p, "alice", "s1", true)
		mustDisconnect(t, p, "alice", "s1", false) // twice
	}},
	{"Reap finds nothing while every instance lives", func(t *testing.T, st rooms.Stores, _ Options) {
		p := st.Presence
		mustConnect(t, p, alice, "s1", true)
		mustConnect(t, p, bob, "s2", true)
		users, err := p.Reap(t.Context())
		if err != nil || len(users) != 0 {
			t.Fatalf("Reap = %v, %v; want nothing", users, err)
		}
		if got := mustOnline(t, p, "alice", "bob"); !slices.Equal(got, []rooms.User{alice, bob}) {
			t.Fatalf("after Reap, Online = %v, want [alice bob]", got)
		}
	}},
	{"concurrent sockets: exactly one first and one last", func(t *testing.T, st rooms.Stores, _ Options) {
		const n = 8
		ctx, p := t.Context(), st.Presence
		var firsts, lasts int
		var mu sync.Mutex
		var errs []error
		parallel(n, func(i int) {
			first, err := p.Connect(ctx, alice, fmt.Sprintf("s%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if first {
				firsts++
			}
		})
		parallel(n, func(i int) {
			last, err := p.Disconnect(ctx, "alice", fmt.Sprintf("s%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if last {
				lasts++
			}
		})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if firsts != 1 || lasts != 1 {
			t.Fatalf("%d concurrent sockets: %d firsts and %d lasts, want 1 and 1", n, firsts, lasts)
		}
	}},
}

func mustConnect(t *testing.T, p rooms.Presence, u rooms.User, socketID string, wantFirst bool) {
	t.Helper()
	first, err := p.Connect(t.Context(), u, socketID)
	if err != nil || first != wantFirst {
		t.Fatalf("Connect(%s, %s) = %v, %v; want %v, nil", u.ID, socketID, first, err, wantFirst)
	}
}

func mustDisconnect(t *testing.T, p rooms.Presence, userID, socketID string, wantLast bool) {
	t.Helper()
	last, err := p.Disconnect(t.Context(), userID, socketID)
	if err != nil || last != wantLast {
		t.Fatalf("Disconnect(%s, %s) = %v, %v; want %v, nil", userID, socketID, last, err, wantLast)
	}
}

func mustOnline(t *testing.T, p rooms.Presence, userIDs ...string) []rooms.User {
	t.Helper()
	us, err := p.Online(t.Context(), userIDs)
	if err != nil {
		t.Fatalf("Online(%q): %v", userIDs, err)
	}
	return us
}

// ---- History ----

var historyTests = []storeTest{
	{"Append assigns growing ids and keeps the fields", func(t *testing.T, st rooms.Stores, opts Options) {
		ctx, h := t.Context(), st.History
		in := rooms.Message{Room: "lobby", UserID: "alice", Name: "Alice", Text: "héllo ✓", TS: 1700000000123, ClientMsgID: "c-1"}
		got, err := h.Append(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rooms.ParseID(got.ID); !ok {
			t.Fatalf("Append gave id %q, not <ms>-<seq>", got.ID)
		}
		want := in
		want.ID = got.ID
		if got != want {
			t.Fatalf("Append = %+v, want %+v", got, want)
		}
		more := appendN(t, h, "lobby", opts.HistorySize-1)
		all := append([]rooms.Message{got}, more...)
		checkIncreasing(t, all)
		page := mustPage(t, h, "lobby", rooms.Query{Limit: opts.HistorySize})
		if !slices.Equal(page.Messages, all) {
			t.Fatalf("Page = %v, want what Append returned: %v", ids(page.Messages), ids(all))
		}
	}},
	{"rooms have separate histories", func(t *testing.T, st rooms.Stores, _ Options) {
		a := appendN(t, st.History, "a", 2)
		b := appendN(t, st.History, "b", 3)
		if got := mustPage(t, st.History, "a", rooms.Query{Limit: 10}).Messages; !slices.Equal(got, a) {
			t.Errorf("room a holds %v, want %v", ids(got), ids(a))
		}
		if got := mustPage(t, st.History, "b", rooms.Query{Limit: 10}).Messages; !slices.Equal(got, b) {
			t.Errorf("room b holds %v, want %v", ids(got), ids(b))
		}
	}},
	{"an empty room has an empty page", func(t *testing.T, st rooms.Stores, _ Options) {
		for _, q := range []rooms.Query{{Limit: 10}, {Limit: 10, After: "0-0"}, {Limit: 10, Before: "99999999999999-0"}} {
			p := mustPage(t, st.History, "nothing-here", q)
			if p.Messages == nil || len(p.Messages) != 0 || p.Gap {
				t.Errorf("Page(%+v) of an empty room = %#v, want an empty non-nil list and no gap", q, p)
			}
		}
	}},
	{"Page of a full room", func(t *testing.T, st rooms.Stores, opts Options) {
		n := opts.HistorySize
		msgs := appendN(t, st.History, "r", n)
		cases := []struct {
			name string
			q    rooms.Query
			want []rooms.Message
		}{
			{"latest", rooms.Query{Limit: 2}, msgs[n-2:]},
			{"latest, limit above the count", rooms.Query{Limit: n + 1}, msgs},
			{"before the newest", rooms.Query{Before: msgs[n-1].ID, Limit: 2}, msgs[n-3 : n-1]},
			{"before is exclusive", rooms.Query{Before: msgs[2].ID, Limit: 10}, msgs[:2]},
			{"before the oldest", rooms.Query{Before: msgs[0].ID, Limit: 10}, nil},
			{"before 0-0", rooms.Query{Before: "0-0", Limit: 10}, nil},
			{"before 1-0", rooms.Query{Before: "1-0", Limit: 10}, nil},
			{"before a future id", rooms.Query{Before: "99999999999999-0", Limit: 2}, msgs[n-2:]},
			{"after the oldest", rooms.Query{After: msgs[0].ID, Limit: 2}, msgs[1:3]},
			{"after is exclusive", rooms.Query{After: msgs[n-2].ID, Limit: 10}, msgs[n-1:]},
			{"after the newest", rooms.Query{After: msgs[n-1].ID, Limit: 10}, nil},
			{"after a future id", rooms.Query{After: "99999999999999-0", Limit: 10}, nil},
			{"after the largest id", rooms.Query{After: fmt.Sprintf("%d-%d", uint64(math.MaxUint64), uint64(math.MaxUint64)), Limit: 10}, nil},
			// Nothing was dropped, so an old id is no gap.
			{"after 0-0, nothing dropped", rooms.Query{After: "0-0", Limit: 3}, msgs[:3]},
		}
		for _, c := range cases {
			got := mustPage(t, st.History, "r", c.q)
			if got.Gap || !sameMessages(got.Messages, c.want) {
				t.Errorf("%s: Page(%+v) = %v gap %v, want %v gap false", c.name, c.q, ids(got.Messages), got.Gap, ids(c.want))
			}
		}
	}},
	{"the cap drops the oldest messages", func(t *testing.T, st rooms.Stores, opts Options) {
		n := opts.HistorySize
		const dropped = 3
		msgs := appendN(t, st.History, "r", n+dropped)
		kept := msgs[dropped:]
		cases := []struct {
			name string
			q    rooms.Query
			want []rooms.Message
			gap  bool
		}{
			{"latest keeps size messages", rooms.Query{Limit: rooms.MaxHistoryLimit}, kept, false},
			{"after a dropped id starts at the oldest kept", rooms.Query{After: msgs[0].ID, Limit: rooms.MaxHistoryLimit}, kept, true},
			{"after a dropped id, limited", rooms.Query{After: msgs[1].ID, Limit: 2}, kept[:2], true},
			{"after 0-0", rooms.Query{After: "0-0", Limit: 2}, kept[:2], true},
			// The newest dropped message is the last one a client saw: it
			// missed none of those that were dropped.
			{"after the newest dropped id", rooms.Query{After: msgs[dropped-1].ID, Limit: 2}, kept[:2], false},
			{"after the oldest kept", rooms.Query{After: kept[0].ID, Limit: 2}, kept[1:3], false},
			{"after the newest", rooms.Query{After: kept[len(kept)-1].ID, Limit: 2}, nil, false},
			{"before the oldest kept", rooms.Query{Before: kept[0].ID, Limit: 10}, nil, false},
			{"before a dropped id", rooms.Query{Before: msgs[1].ID, Limit: 10}, nil, false},
			{"before the second kept", rooms.Query{Before: kept[1].ID, Limit: 10}, kept[:1], false},
		}
		for _, c := range cases {
			got := mustPage(t, st.History, "r", c.q)
			if got.Gap != c.gap || !sameMessages(got.Messages, c.want) {
				t.Errorf("%s: Page(%+v) = %v gap %v, want %v gap %v", c.name, c.q, ids(got.Messages), got.Gap, ids(c.want), c.gap)
			}
		}
	}},
	{"paging with after returns each message once, in order", func(t *testing.T, st rooms.Stores, opts Options) {
		msgs := appendN(t, st.History, "r", opts.HistorySize)
		var seen []rooms.Message
		cursor := "0-0"
		for range len(msgs) + 1 {
			p := mustPage(t, st.History, "r", rooms.Query{After: cursor, Limit: 3})
			if p.Gap {
				t.Fatalf("page after %s has a gap, but nothing was dropped", cursor)
			}
			if len(p.Messages) == 0 {
				break
			}
			seen = append(seen, p.Messages...)
			cursor = p.Messages[len(p.Messages)-1].ID
		}
		if !slices.Equal(seen, msgs) {
			t.Fatalf("paging with after saw %v, want %v", ids(seen), ids(msgs))
		}
	}},
	{"paging with before returns each message once, in order", func(t *testing.T, st rooms.Stores, opts Options) {
		msgs := appendN(t, st.History, "r", opts.HistorySize)
		p := mustPage(t, st.History, "r", rooms.Query{Limit: 3})
		seen := p.Messages
		for range len(msgs) + 1 {
			if len(p.Messages) == 0 {
				break
			}
			p = mustPage(t, st.History, "r", rooms.Query{Before: p.Messages[0].ID, Limit: 3})
			seen = append(slices.Clone(p.Messages), seen...)
		}
		if !slices.Equal(seen, msgs) {
			t.Fatalf("paging with before saw %v, want %v", ids(seen), ids(msgs))
		}
	}},
	{"concurrent appends get distinct growing ids", func(t *testing.T, st rooms.Stores, opts Options) {
		n := opts.HistorySize
		ctx := t.Context()
		var mu sync.Mutex
		var errs []error
		byText := make(map[string]rooms.Message)
		parallel(n, func(i int) {
			m, err := st.History.Append(ctx, rooms.Message{Room: "r", UserID: "u", Name: "U", Text: fmt.Sprintf("m%d", i), TS: 1})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			byText[m.Text] = m
		})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		page := mustPage(t, st.History, "r", rooms.Query{Limit: n})
		if len(page.Messages) != n {
			t.Fatalf("%d concurrent appends, Page holds %d", n, len(page.Messages))
		}
		checkIncreasing(t, page.Messages)
		for _, m := range page.Messages {
			if byText[m.Text] != m {
				t.Errorf("Page holds %+v, Append returned %+v", m, byText[m.Text])
			}
		}
	}},
}

var memberHistoryTests = []storeTest{
	{"AppendIfMember stores a member's message only", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx := t.Context()
		h := memberHistory(t, st)
		mustJoin(t, st.Membership, "alice", "lobby", 10)
		mustJoin(t, st.Membership, "bob", "elsewhere", 10)
		from := func(user string) rooms.Message {
			return rooms.Message{Room: "lobby", UserID: user, Name: user, Text: "hi from " + user, TS: 1700000000000}
		}
		if got, member, err := h.AppendIfMember(ctx, from("bob")); err != nil || member || got != (rooms.Message{}) {
			t.Fatalf("AppendIfMember(non-member) = %+v, %v, %v; want nothing, false, nil", got, member, err)
		}
		got, member, err := h.AppendIfMember(ctx, from("alice"))
		if err != nil || !member {
			t.Fatalf("AppendIfMember(member) = %+v, %v, %v; want the message, true, nil", got, member, err)
		}
		want := from("alice")
		want.ID = got.ID
		if _, ok := rooms.ParseID(got.ID); !ok || got != want {
			t.Fatalf("AppendIfMember(member) = %+v, want %+v with an id", got, want)
		}
		if _, err := st.Membership.Leave(ctx, "alice", "lobby"); err != nil {
			t.Fatal(err)
		}
		if _, member, err := h.AppendIfMember(ctx, from("alice")); err != nil || member {
			t.Fatalf("AppendIfMember after leaving = %v, %v; want false, nil", member, err)
		}
		if page := mustPage(t, h, "lobby", rooms.Query{Limit: 10}); !slices.Equal(page.Messages, []rooms.Message{got}) {
			t.Fatalf("the room holds %v, want only the member's message %s", ids(page.Messages), got.ID)
		}
	}},
	{"AppendIfMember and Append share ids and the room's size", func(t *testing.T, st rooms.Stores, opts Options) {
		h := memberHistory(t, st)
		mustJoin(t, st.Membership, "alice", "r", 10)
		var all []rooms.Message
		for i := range opts.HistorySize + 2 {
			m := rooms.Message{Room: "r", UserID: "alice", Name: "Alice", Text: fmt.Sprintf("#%d", i), TS: int64(1700000000000 + i)}
			if i%2 == 0 {
				all = append(all, appendN(t, h, "r", 1)...)
				continue
			}
			got, member, err := h.AppendIfMember(t.Context(), m)
			if err != nil || !member {
				t.Fatalf("AppendIfMember #%d = %v, %v", i, member, err)
			}
			all = append(all, got)
		}
		checkIncreasing(t, all)
		want := all[len(all)-opts.HistorySize:]
		if got := mustPage(t, h, "r", rooms.Query{Limit: opts.HistorySize + 2}).Messages; !slices.Equal(got, want) {
			t.Fatalf("the room holds %v, want the newest %d: %v", ids(got), opts.HistorySize, ids(want))
		}
	}},
}

var sendStoreTests = []storeTest{
	{"StoreSend stores a member's message and refuses a non-member", func(t *testing.T, st rooms.Stores, _ Options) {
		h := sendStore(t, st)
		mustJoin(t, st.Membership, "alice", "lobby", 10)
		mustJoin(t, st.Membership, "bob", "elsewhere", 10)
		if res := mustStoreSend(t, h, from("bob", "lobby", "hi"), rooms.SendStep{MemberOnly: true}); res.Outcome != rooms.SendNotMember {
			t.Fatalf("a non-member's send = %+v, want SendNotMember", res)
		}
		res := mustStoreSend(t, h, from("alice", "lobby", "hi"), rooms.SendStep{MemberOnly: true})
		want := from("alice", "lobby", "hi")
		want.ID = res.Message.ID
		if _, ok := rooms.ParseID(res.Message.ID); res.Outcome != rooms.SendStored || !ok || res.Message != want {
			t.Fatalf("a member's send = %+v, want SendStored of %+v with an id", res, want)
		}
		// Without MemberOnly anyone's message is stored.
		api := mustStoreSend(t, h, from("bob", "lobby", "api"), rooms.SendStep{})
		if api.Outcome != rooms.SendStored {
			t.Fatalf("a send without MemberOnly = %+v, want SendStored", api)
		}
		if got := mustPage(t, h, "lobby", rooms.Query{Limit: 10}).Messages; !slices.Equal(got, []rooms.Message{res.Message, api.Message}) {
			t.Fatalf("the room holds %v, want %v and %v", ids(got), res.Message.ID, api.Message.ID)
		}
	}},
	{"StoreSend with a key returns the earlier send", func(t *testing.T, st rooms.Stores, opts Options) {
		h := sendStore(t, st)
		mustJoin(t, st.Membership, "alice", "lobby", 10)
		const key = "lobby\x00alice\x00c1"
		step := rooms.SendStep{MemberOnly: true, Key: key}
		first := mustStoreSend(t, h, from("alice", "lobby", "original"), step)
		if first.Outcome != rooms.SendStored {
			t.Fatalf("first send = %+v, want SendStored", first)
		}
		again := mustStoreSend(t, h, from("alice", "lobby", "retry"), step)
		if again.Outcome != rooms.SendPrior || again.Message != first.Message {
			t.Fatalf("retry = %+v, want SendPrior of %+v", again, first.Message)
		}
		// The record is the Idempotency store's, without the text.
		record := first.Message
		record.Text = ""
		mustClaim(t, st.Idempotency, key, &record, false)
		// A non-member is refused before the key is looked at.
		if res := mustStoreSend(t, h, from("bob", "lobby", "x"), rooms.SendStep{MemberOnly: true, Key: key}); res.Outcome != rooms.SendNotMember {
			t.Fatalf("a non-member's send with a stored key = %+v, want SendNotMember", res)
		}
		if got := mustPage(t, h, "lobby", rooms.Query{Limit: 10}).Messages; !slices.Equal(got, []rooms.Message{first.Message}) {
			t.Fatalf("the room holds %v, want only %s", ids(got), first.Message.ID)
		}
		// Once history dropped the message, the earlier send has no text.
		appendN(t, h, "lobby", opts.HistorySize)
		late := mustStoreSend(t, h, from("alice", "lobby", "retry"), step)
		if late.Outcome != rooms.SendPrior || late.Message != record {
			t.Fatalf("retry after history dropped the message = %+v, want SendPrior of %+v", late, record)
		}
	}},
	{"StoreSend waits for a claimed key and reads a completed one", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, h := t.Context(), sendStore(t, st)
		const key = "lobby\x00alice\x00c2"
		mustClaim(t, st.Idempotency, key, nil, true)
		if res := mustStoreSend(t, h, from("alice", "lobby", "x"), rooms.SendStep{Key: key}); res.Outcome != rooms.SendPending {
			t.Fatalf("a send with a claimed key = %+v, want SendPending", res)
		}
		if got := mustPage(t, h, "lobby", rooms.Query{Limit: 10}).Messages; len(got) != 0 {
			t.Fatalf("a pending send stored %v", ids(got))
		}
		if err := st.Idempotency.Complete(ctx, key, sent); err != nil {
			t.Fatal(err)
		}
		if res := mustStoreSend(t, h, from("alice", "lobby", "x"), rooms.SendStep{Key: key}); res.Outcome != rooms.SendPrior || res.Message != sent {
			t.Fatalf("a send with a completed key = %+v, want SendPrior of %+v", res, sent)
		}
		// Releasing a key that StoreSend recorded keeps the record.
		const own = "lobby\x00alice\x00c3"
		res := mustStoreSend(t, h, from("alice", "lobby", "y"), rooms.SendStep{Key: own})
		if err := st.Idempotency.Release(ctx, own); err != nil {
			t.Fatal(err)
		}
		record := res.Message
		record.Text = ""
		mustClaim(t, st.Idempotency, own, &record, false)
	}},
	{"concurrent StoreSends with one key store one message", func(t *testing.T, st rooms.Stores, _ Options) {
		const n = 8
		ctx, h := t.Context(), sendStore(t, st)
		var mu sync.Mutex
		var stored []rooms.Message
		var errs []error
		parallel(n, func(i int) {
			res, err := h.StoreSend(ctx, from("alice", "lobby", fmt.Sprintf("m%d", i)), rooms.SendStep{Key: "lobby\x00alice\x00c4"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case res.Outcome == rooms.SendStored:
				stored = append(stored, res.Message)
			case res.Outcome != rooms.SendPrior && res.Outcome != rooms.SendPending:
				errs = append(errs, fmt.Errorf("outcome %v", res.Outcome))
			}
		})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := mustPage(t, h, "lobby", rooms.Query{Limit: 10}).Messages; len(stored) != 1 || !slices.Equal(got, stored) {
			t.Fatalf("%d concurrent sends with one key: %d stored, the room holds %v", n, len(stored), ids(got))
		}
	}},
}

// from is a message of user to room, as a send would store it.
func from(user, room, text string) rooms.Message {
	return rooms.Message{Room: room, UserID: user, Name: "N " + user, Text: text, TS: 1700000000000, ClientMsgID: "c"}
}

func sendStore(t *testing.T, st rooms.Stores) rooms.SendStore {
	t.Helper()
	h, ok := st.History.(rooms.SendStore)
	if !ok {
		t.Fatalf("Options.SendStore is set, but the History store %T is no rooms.SendStore", st.History)
	}
	return h
}

func mustStoreSend(t *testing.T, h rooms.SendStore, m rooms.Message, step rooms.SendStep) rooms.SendResult {
	t.Helper()
	res, err := h.StoreSend(t.Context(), m, step)
	if err != nil {
		t.Fatalf("StoreSend(%+v, %+v): %v", m, step, err)
	}
	return res
}

func memberHistory(t *testing.T, st rooms.Stores) rooms.MemberHistory {
	t.Helper()
	h, ok := st.History.(rooms.MemberHistory)
	if !ok {
		t.Fatalf("Options.MemberHistory is set, but the History store %T is no rooms.MemberHistory", st.History)
	}
	return h
}

// appendN appends n messages to room and returns them as Append did.
func appendN(t *testing.T, h rooms.History, room string, n int) []rooms.Message {
	t.Helper()
	out := make([]rooms.Message, 0, n)
	for i := range n {
		m, err := h.Append(t.Context(), rooms.Message{Room: room, UserID: "alice", Name: "Alice", Text: fmt.Sprintf("%s #%d", room, i), TS: int64(1700000000000 + i)})
		if err != nil {
			t.Fatalf("Append #%d to %q: %v", i, room, err)
		}
		out = append(out, m)
	}
	return out
}

func mustPage(t *testing.T, h rooms.History, room string, q rooms.Query) rooms.Page {
	t.Helper()
	p, err := h.Page(t.Context(), room, q)
	if err != nil {
		t.Fatalf("Page(%q, %+v): %v", room, q, err)
	}
	return p
}

// checkIncreasing fails unless the ids of msgs grow strictly.
func checkIncreasing(t *testing.T, msgs []rooms.Message) {
	t.Helper()
	var prev rooms.MessageID
	for i, m := range msgs {
		id, ok := rooms.ParseID(m.ID)
		if !ok {
			t.Fatalf("message %d has id %q, not <ms>-<seq>", i, m.ID)
		}
		if i > 0 && !prev.Less(id) {
			t.Fatalf("message %d has id %s, not above the previous %s", i, id, prev)
		}
		prev = id
	}
}

// sameMessages compares two lists, a nil want meaning an empty list.
func sameMessages(got, want []rooms.Message) bool {
	return got != nil && slices.Equal(got, want)
}

func ids(msgs []rooms.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// ---- Idempotency ----

var sent = rooms.Message{ID: "1700000000000-3", Room: "lobby", UserID: "alice", Name: "Alice", Text: "hi ✓", TS: 1700000000000, ClientMsgID: "c-1"}

var idempotencyTests = []storeTest{
	{"claim, complete, claim again returns the message", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, s := t.Context(), st.Idempotency
		mustClaim(t, s, "k", nil, true)
		mustClaim(t, s, "k", nil, false) // in progress
		if err := s.Complete(ctx, "k", sent); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "k", &sent, false)
		mustClaim(t, s, "k", &sent, false)
		mustClaim(t, s, "other", nil, true)
	}},
	{"release lets a new claim succeed", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, s := t.Context(), st.Idempotency
		mustClaim(t, s, "k", nil, true)
		if err := s.Release(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "k", nil, true)
		if err := s.Complete(ctx, "k", sent); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "k", &sent, false)
	}},
	{"release after complete keeps the message", func(t *testing.T, st rooms.Stores, _ Options) {
		ctx, s := t.Context(), st.Idempotency
		mustClaim(t, s, "k", nil, true)
		if err := s.Complete(ctx, "k", sent); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "k", &sent, false)
	}},
	{"releasing an unknown key is harmless", func(t *testing.T, st rooms.Stores, _ Options) {
		if err := st.Idempotency.Release(t.Context(), "never-claimed"); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, st.Idempotency, "never-claimed", nil, true)
	}},
	{"concurrent claims: exactly one wins", func(t *testing.T, st rooms.Stores, _ Options) {
		const n = 8
		ctx := t.Context()
		var mu sync.Mutex
		var wins int
		var errs []error
		parallel(n, func(int) {
			prior, claimed, err := st.Idempotency.Claim(ctx, "k")
			mu.Lock()
			defer mu.Unlock()
			if err != nil || prior != nil {
				errs = append(errs, fmt.Errorf("claim = %v, %v, %v", prior, claimed, err))
			}
			if claimed {
				wins++
			}
		})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if wins != 1 {
			t.Fatalf("%d concurrent claims of one key: %d won, want 1", n, wins)
		}
	}},
}

func mustClaim(t *testing.T, s rooms.Idempotency, key string, wantPrior *rooms.Message, wantClaimed bool) {
	t.Helper()
	prior, claimed, err := s.Claim(t.Context(), key)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if claimed != wantClaimed || (prior == nil) != (wantPrior == nil) || (prior != nil && *prior != *wantPrior) {
		t.Fatalf("Claim(%q) = %+v, %v; want %+v, %v", key, prior, claimed, wantPrior, wantClaimed)
	}
}
