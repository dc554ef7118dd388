package rooms

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestChat(t *testing.T, limits Limits, historySize int) *Chat {
	t.Helper()
	c, err := NewChat(limits, Stores{
		Membership:  NewMemoryMembership(),
		Presence:    NewMemoryPresence(),
		History:     NewMemoryHistory(historySize),
		Idempotency: NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func codeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

var (
	alice = User{ID: "alice", Name: "Alice"}
	bob   = User{ID: "bob", Name: "Bob"}
)

func TestChatJoinLeave(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{RoomsPerUser: 2}, 10)
	tests := []struct {
		name    string
		op      func() (bool, error)
		want    bool
		wantErr Code
	}{
		{"first join", func() (bool, error) { return member(c.Join(ctx, alice, "a")) }, true, ""},
		{"join again changes nothing", func() (bool, error) { return member(c.Join(ctx, alice, "a")) }, false, ""},
		{"second room", func() (bool, error) { return member(c.Join(ctx, alice, "b")) }, true, ""},
		{"over the limit", func() (bool, error) { return member(c.Join(ctx, alice, "c")) }, false, CodeTooLarge},
		{"rejoin at the limit", func() (bool, error) { return member(c.Join(ctx, alice, "b")) }, false, ""},
		{"reserved name", func() (bool, error) { return member(c.Join(ctx, alice, "user:bob")) }, false, CodeBadRequest},
		{"bad characters", func() (bool, error) { return member(c.Join(ctx, alice, "a b")) }, false, CodeBadRequest},
		{"too long", func() (bool, error) { return member(c.Join(ctx, alice, strings.Repeat("r", 65))) }, false, CodeBadRequest},
		{"leave", func() (bool, error) { return member(c.Leave(ctx, alice, "b")) }, true, ""},
		{"leave again", func() (bool, error) { return member(c.Leave(ctx, alice, "b")) }, false, ""},
		{"room free again", func() (bool, error) { return member(c.Join(ctx, alice, "c")) }, true, ""},
	}
	for _, tt := range tests {
		got, err := tt.op()
		if codeOf(err) != tt.wantErr || (tt.wantErr == "" && err != nil) || got != tt.want {
			t.Fatalf("%s: got %v, %v; want %v, %q", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
	rs, _ := c.Rooms(ctx, alice.ID)
	if strings.Join(rs, ",") != "a,c" {
		t.Fatalf("rooms = %v", rs)
	}
}

func TestChatSend(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{MessageBytes: 10}, 10)
	if _, err := c.Join(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		user    User
		send    Send
		member  bool
		wantErr Code
	}{
		{"member", alice, Send{Room: "a", Text: "hi"}, true, ""},
		{"not a member", bob, Send{Room: "a", Text: "hi"}, true, CodeForbidden},
		{"api sends as anyone", bob, Send{Room: "a", Text: "hi"}, false, ""},
		{"empty text", alice, Send{Room: "a", Text: ""}, true, CodeBadRequest},
		{"too long", alice, Send{Room: "a", Text: "12345678901"}, true, CodeTooLarge},
		{"bad utf-8", alice, Send{Room: "a", Text: "\xff"}, true, CodeBadRequest},
		{"clientMsgId too long", alice, Send{Room: "a", Text: "x", ClientMsgID: strings.Repeat("c", 65)}, true, CodeBadRequest},
	}
	for _, tt := range tests {
		m, fresh, err := sendAs(ctx, c, tt.user, tt.send, tt.member)
		if codeOf(err) != tt.wantErr || (tt.wantErr == "" && err != nil) {
			t.Fatalf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
		}
		if tt.wantErr == "" && (!fresh || m.ID == "" || m.UserID != tt.user.ID || m.Name != tt.user.Name || m.TS == 0) {
			t.Fatalf("%s: got %+v fresh=%v", tt.name, m, fresh)
		}
	}
}

func TestChatSendIdempotent(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{}, 10)
	for _, u := range []User{alice, bob} {
		if _, err := c.Join(ctx, u, "a"); err != nil {
			t.Fatal(err)
		}
	}
	first, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "hi", ClientMsgID: "m1"})
	if err != nil || !fresh {
		t.Fatal(err, fresh)
	}
	again, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "changed", ClientMsgID: "m1"})
	if err != nil || fresh || again != first {
		t.Fatalf("retry: %+v fresh=%v err=%v, want the original %+v", again, fresh, err, first)
	}
	other, fresh, err := c.Send(ctx, bob, Send{Room: "a", Text: "hi", ClientMsgID: "m1"})
	if err != nil || !fresh || other.ID == first.ID {
		t.Fatalf("another user's m1 must be a new message: %+v %v %v", other, fresh, err)
	}
	// Concurrent sends with one clientMsgId store exactly one message.
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			m, _, err := c.Send(ctx, alice, Send{Room: "a", Text: "race", ClientMsgID: "m2"})
			if err != nil {
				t.Error(err)
			}
			ids <- m.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Fatalf("concurrent sends stored %d messages: %v", len(seen), seen)
	}
	p, err := c.History(ctx, alice.ID, "a", Query{})
	if err != nil || len(p.Messages) != 3 {
		t.Fatalf("history has %d messages, want 3: %v", len(p.Messages), err)
	}
}

func TestChatHistoryRules(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{}, 3)
	if _, err := c.Join(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, text := range []string{"1", "2", "3", "4", "5"} {
		m, _, err := c.Send(ctx, alice, Send{Room: "a", Text: text})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if _, err := c.History(ctx, bob.ID, "a", Query{}); codeOf(err) != CodeForbidden {
		t.Fatalf("non-member history: %v", err)
	}
	if _, err := c.RoomHistory(ctx, "a", Query{Limit: 101}); codeOf(err) != CodeBadRequest {
		t.Fatalf("limit 101: %v", err)
	}
	p, err := c.History(ctx, alice.ID, "a", Query{After: ids[0]})
	if err != nil || !p.Gap || len(p.Messages) != 3 || p.Messages[0].Text != "3" {
		t.Fatalf("after a trimmed id: %+v %v", p, err)
	}
	p, err = c.History(ctx, alice.ID, "a", Query{After: ids[2]})
	if err != nil || p.Gap || len(p.Messages) != 2 || p.Messages[0].Text != "4" {
		t.Fatalf("after a kept id: %+v %v", p, err)
	}
	p, err = c.History(ctx, alice.ID, "a", Query{Before: ids[4], Limit: 1})
	if err != nil || len(p.Messages) != 1 || p.Messages[0].Text != "4" {
		t.Fatalf("before: %+v %v", p, err)
	}
}

func TestChatPresence(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{}, 3)
	for _, u := range []User{alice, bob} {
		if _, err := c.Join(ctx, u, "a"); err != nil {
			t.Fatal(err)
		}
	}
	first, rooms, err := c.Connect(ctx, alice, "s1")
	if err != nil || !first || len(rooms) != 1 {
		t.Fatalf("connect: %v %v %v", first, rooms, err)
	}
	if first, _, _ := c.Connect(ctx, alice, "s2"); first {
		t.Fatal("second socket reported as first")
	}
	users, _ := c.Presence(ctx, "a")
	if len(users) != 1 || users[0] != alice {
		t.Fatalf("presence = %v, want only alice", users)
	}
	if last, _, _ := c.Disconnect(ctx, alice.ID, "s1"); last {
		t.Fatal("first of two sockets reported as last")
	}
	last, rooms, err := c.Disconnect(ctx, alice.ID, "s2")
	if err != nil || !last || len(rooms) != 1 {
		t.Fatalf("last disconnect: %v %v %v", last, rooms, err)
	}
	if users, _ := c.Presence(ctx, "a"); len(users) != 0 {
		t.Fatalf("presence after disconnect = %v", users)
	}
}

func TestParseID(t *testing.T) {
	for in, ok := range map[string]bool{
		"1-0": true, "1795666978671-12": true, "": false, "1": false, "-1": false, "1-": false,
		"a-1": false, "1-b": false, "+1-0": false, "1-+0": false, "18446744073709551616-0": false,
	} {
		if _, got := ParseID(in); got != ok {
			t.Errorf("ParseID(%q) ok = %v, want %v", in, got, ok)
		}
	}
}

// A retry of a send whose message history has already dropped still gets
// the original id, with the text the retry carries.
func TestChatRetryAfterTrim(t *testing.T) {
	ctx := context.Background()
	c := newTestChat(t, Limits{}, 2)
	if _, err := c.Join(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	first, _, err := c.Send(ctx, alice, Send{Room: "a", Text: "original", ClientMsgID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"2", "3", "4"} {
		if _, _, err := c.Send(ctx, alice, Send{Room: "a", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	again, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "original", ClientMsgID: "m1"})
	if err != nil || fresh || again != first {
		t.Fatalf("retry after trim: %+v fresh=%v err=%v, want %+v", again, fresh, err, first)
	}
}

// memberHistory is a MemberHistory over the memory stores that counts the
// membership lookups Chat makes itself.
type memberHistory struct {
	*MemoryHistory
	members  *countingMembership
	appended int
}

func (h *memberHistory) AppendIfMember(ctx context.Context, m Message) (Message, bool, error) {
	ok, err := h.members.Membership.IsMember(ctx, m.UserID, m.Room)
	if err != nil || !ok {
		return Message{}, false, err
	}
	h.appended++
	stored, err := h.Append(ctx, m)
	return stored, err == nil, err
}

type countingMembership struct {
	Membership
	lookups int
}

func (m *countingMembership) IsMember(ctx context.Context, userID, room string) (bool, error) {
	m.lookups++
	return m.Membership.IsMember(ctx, userID, room)
}

func TestChatSendWithMemberHistory(t *testing.T) {
	ctx := context.Background()
	members := &countingMembership{Membership: NewMemoryMembership()}
	hist := &memberHistory{MemoryHistory: NewMemoryHistory(10), members: members}
	c, err := NewChat(Limits{}, Stores{
		Membership:  members,
		Presence:    NewMemoryPresence(),
		History:     hist,
		Idempotency: NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	send := func(u User, s Send, memberOnly bool) (Message, bool, error) {
		t.Helper()
		return sendAs(ctx, c, u, s, memberOnly)
	}

	if m, fresh, err := send(alice, Send{Room: "a", Text: "hi"}, true); err != nil || !fresh || m.ID == "" {
		t.Fatalf("a member's send = %+v, %v, %v", m, fresh, err)
	}
	if members.lookups != 0 || hist.appended != 1 {
		t.Fatalf("a member's send made %d membership lookups besides %d AppendIfMember; want 0 and 1", members.lookups, hist.appended)
	}
	if _, _, err := send(bob, Send{Room: "a", Text: "hi"}, true); codeOf(err) != CodeForbidden {
		t.Fatalf("a non-member's send: err = %v, want %s", err, CodeForbidden)
	}
	if _, _, err := send(bob, Send{Room: "a", Text: "hi", ClientMsgID: "k"}, true); codeOf(err) != CodeForbidden {
		t.Fatalf("a non-member's send with a clientMsgId: err = %v, want %s", err, CodeForbidden)
	}
	// The refused send gave its claim back: once bob joins, the same
	// clientMsgId stores a new message.
	if _, err := c.Join(ctx, bob, "a"); err != nil {
		t.Fatal(err)
	}
	first, fresh, err := send(bob, Send{Room: "a", Text: "now", ClientMsgID: "k"}, true)
	if err != nil || !fresh {
		t.Fatalf("bob's send after joining = %+v, %v, %v; want a new message", first, fresh, err)
	}
	if again, fresh, err := send(bob, Send{Room: "a", Text: "now", ClientMsgID: "k"}, true); err != nil || fresh || again.ID != first.ID {
		t.Fatalf("bob's retry = %+v, %v, %v; want the original %s", again, fresh, err, first.ID)
	}
	// A retry after leaving is refused, as without a MemberHistory.
	if _, err := c.Leave(ctx, bob, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := send(bob, Send{Room: "a", Text: "now", ClientMsgID: "k"}, true); codeOf(err) != CodeForbidden {
		t.Fatalf("bob's retry after leaving: err = %v, want %s", err, CodeForbidden)
	}
	// The server API sends as anyone.
	if _, fresh, err := send(bob, Send{Room: "a", Text: "api"}, false); err != nil || !fresh {
		t.Fatalf("an API send for a non-member = %v, %v", fresh, err)
	}
	page, err := c.History(ctx, alice.ID, "a", Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range page.Messages {
		texts = append(texts, m.UserID+":"+m.Text)
	}
	if got := strings.Join(texts, ","); got != "alice:hi,bob:now,bob:api" {
		t.Fatalf("the room holds %s; want alice:hi,bob:now,bob:api", got)
	}
}

// sendAs sends s from u as a member (Send) or as the server API (Post).
func sendAs(ctx context.Context, c *Chat, u User, s Send, member bool) (Message, bool, error) {
	if member {
		return c.Send(ctx, u, s)
	}
	return c.Post(ctx, u, s)
}

// member is the Member of a Join or Leave result.
func member(c Change, err error) (bool, error) { return c.Member, err }

// oneStepHistory is a SendStore over the memory stores that can answer
// SendPending a number of times first.
type oneStepHistory struct {
	*MemoryHistory
	members Membership
	idem    Idempotency
	calls   int
	pending int // SendPending answers still to give
}

func (h *oneStepHistory) StoreSend(ctx context.Context, m Message, step SendStep) (SendResult, error) {
	h.calls++
	if h.pending > 0 {
		h.pending--
		return SendResult{Outcome: SendPending}, nil
	}
	if step.MemberOnly {
		if ok, err := h.members.IsMember(ctx, m.UserID, m.Room); err != nil || !ok {
			return SendResult{Outcome: SendNotMember}, err
		}
	}
	if step.Key != "" {
		prior, claimed, err := h.idem.Claim(ctx, step.Key)
		if err != nil {
			return SendResult{}, err
		}
		if prior != nil {
			return SendResult{Outcome: SendPrior, Message: *prior}, nil
		}
		if !claimed {
			return SendResult{Outcome: SendPending}, nil
		}
	}
	stored, err := h.Append(ctx, m)
	if err != nil || step.Key == "" {
		return SendResult{Outcome: SendStored, Message: stored}, err
	}
	record := stored
	record.Text = ""
	return SendResult{Outcome: SendStored, Message: stored}, h.idem.Complete(ctx, step.Key, record)
}

func TestChatSendWithSendStore(t *testing.T) {
	ctx := context.Background()
	members := &countingMembership{Membership: NewMemoryMembership()}
	hist := &oneStepHistory{MemoryHistory: NewMemoryHistory(10), members: members.Membership, idem: NewMemoryIdempotency(time.Hour)}
	c, err := NewChat(Limits{PendingWait: 100 * time.Millisecond}, Stores{
		Membership:  members,
		Presence:    NewMemoryPresence(),
		History:     hist,
		Idempotency: NewMemoryIdempotency(time.Hour), // not the one the store uses: Chat must not call it
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	calls := func(want int, what string) {
		t.Helper()
		if hist.calls != want || members.lookups != 0 {
			t.Fatalf("%s: %d StoreSend calls and %d membership lookups by Chat; want %d and 0", what, hist.calls, members.lookups, want)
		}
		hist.calls = 0
	}

	if m, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "hi"}); err != nil || !fresh || m.ID == "" || m.TS == 0 {
		t.Fatalf("a member's send = %+v, %v, %v", m, fresh, err)
	}
	calls(1, "a member's send")
	if _, _, err := c.Send(ctx, bob, Send{Room: "a", Text: "hi", ClientMsgID: "k"}); codeOf(err) != CodeForbidden {
		t.Fatalf("a non-member's send: err = %v, want %s", err, CodeForbidden)
	}
	calls(1, "a non-member's send")
	if _, fresh, err := c.Post(ctx, bob, Send{Room: "a", Text: "api"}); err != nil || !fresh {
		t.Fatalf("an API send for a non-member = %v, %v", fresh, err)
	}
	calls(1, "an API send")

	first, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "once", ClientMsgID: "k"})
	if err != nil || !fresh {
		t.Fatalf("a send with a clientMsgId = %+v, %v, %v", first, fresh, err)
	}
	calls(1, "a send with a clientMsgId")
	// The store's record has no text: the retry's fills it in.
	again, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "once", ClientMsgID: "k"})
	if err != nil || fresh || again != first {
		t.Fatalf("its retry = %+v, %v, %v; want the original %+v", again, fresh, err, first)
	}
	calls(1, "its retry")

	// Another send with the key in progress: Chat asks again until it is
	// done, within PendingWait.
	hist.pending = 2
	if m, fresh, err := c.Send(ctx, alice, Send{Room: "a", Text: "later", ClientMsgID: "k2"}); err != nil || !fresh || m.Text != "later" {
		t.Fatalf("a send behind two pending answers = %+v, %v, %v", m, fresh, err)
	}
	calls(3, "a send behind two pending answers")
	hist.pending = 1000
	if _, _, err := c.Send(ctx, alice, Send{Room: "a", Text: "never", ClientMsgID: "k3"}); codeOf(err) != CodeUnavailable {
		t.Fatalf("a send that stays pending: err = %v, want %s", err, CodeUnavailable)
	}
}
