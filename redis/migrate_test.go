package redis

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/rooms"
)

func TestRedisMigrateLayout(t *testing.T) {
	storeMigrateScenario(t, storeRedisServer(t))
}

// storeMigrateScenario writes keys as the old layout had them on client's
// Redis, moves them with MigrateLayout and reads them back through the
// stores.
func storeMigrateScenario(t *testing.T, client goredis.UniversalClient) {
	ctx := t.Context()
	prefix := storeNewPrefix()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Memberships: alice in lobby and dev, bob in lobby.
	must(client.SAdd(ctx, prefix+":{membership}:user:alice", "lobby", "dev").Err())
	must(client.SAdd(ctx, prefix+":{membership}:user:bob", "lobby").Err())
	must(client.SAdd(ctx, prefix+":{membership}:room:lobby", "alice", "bob").Err())
	must(client.SAdd(ctx, prefix+":{membership}:room:dev", "alice").Err())
	// lobby's history: four messages, the oldest dropped; it expires.
	oldHistory := prefix + ":history:lobby"
	var stored []rooms.Message
	for i := range 4 {
		m := rooms.Message{Room: "lobby", UserID: "alice", Name: "Alice", Text: "m" + strconv.Itoa(i), TS: 1700000000000, ClientMsgID: "c" + strconv.Itoa(i)}
		body, _ := json.Marshal(m)
		id, err := client.XAdd(ctx, &goredis.XAddArgs{Stream: oldHistory, Values: []string{historyField, string(body)}}).Result()
		must(err)
		m.ID = id
		stored = append(stored, m)
	}
	must(client.XDel(ctx, oldHistory, stored[0].ID).Err())
	must(client.PExpire(ctx, oldHistory, time.Hour).Err())
	// The record of alice's send c2, without its text.
	record := stored[2]
	record.Text = ""
	body, _ := json.Marshal(record)
	must(client.Set(ctx, prefix+":idempotency:lobby\x00alice\x00c2", body, time.Hour).Err())

	// A live instance under the prefix blocks the move.
	instances := prefix + ":{presence}:instances"
	must(client.ZAdd(ctx, instances, goredis.Z{Score: float64(time.Now().Add(time.Minute).UnixMilli()), Member: "running"}).Err())
	if _, err := MigrateLayout(ctx, client, prefix); err == nil || !strings.Contains(err.Error(), "stop them all") {
		t.Fatalf("MigrateLayout with an instance running = %v, want a refusal", err)
	}
	must(client.ZAdd(ctx, instances, goredis.Z{Score: float64(time.Now().Add(-time.Minute).UnixMilli()), Member: "running"}).Err())

	st, err := MigrateLayout(ctx, client, prefix)
	if want := (MigrateStats{Memberships: 3, Histories: 1, Records: 1, Dropped: 2}); err != nil || st != want {
		t.Fatalf("MigrateLayout = %+v, %v; want %+v", st, err, want)
	}
	if err := CheckLayout(ctx, client, prefix); err != nil {
		t.Fatalf("CheckLayout after the move: %v", err)
	}
	if st, err := MigrateLayout(ctx, client, prefix); err != nil || st != (MigrateStats{}) {
		t.Fatalf("a second MigrateLayout = %+v, %v; want nothing moved", st, err)
	}

	stores := storeNewStores(t, client, prefix)
	for user, want := range map[string][]string{"alice": {"dev", "lobby"}, "bob": {"lobby"}} {
		if got, err := stores.Membership.Rooms(ctx, user); err != nil || !slices.Equal(got, want) {
			t.Errorf("Rooms(%s) = %q (%v), want %q", user, got, err, want)
		}
	}
	if got, err := stores.Membership.Members(ctx, "lobby"); err != nil || !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("Members(lobby) = %q (%v), want alice and bob", got, err)
	}
	page, err := stores.History.Page(ctx, "lobby", rooms.Query{After: "0-0", Limit: 10})
	if err != nil || !page.Gap || !slices.Equal(page.Messages, stored[1:]) {
		t.Errorf("lobby's history = %v gap %v (%v), want %v with a gap", ids(page.Messages), page.Gap, err, ids(stored[1:]))
	}
	if ttl, err := client.PTTL(ctx, roomKey(prefix, "lobby", "history")).Result(); err != nil || ttl <= 59*time.Minute {
		t.Errorf("lobby's history expires in %v (%v), want about 1h", ttl, err)
	}
	// Through a Chat: the retry of c2 finds its record, bob can send, and
	// joins and leaves go on from the moved memberships.
	chat, err := rooms.NewChat(rooms.Limits{}, stores)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := rooms.User{ID: "alice", Name: "Alice"}, rooms.User{ID: "bob", Name: "Bob"}
	if m, fresh, err := chat.Send(ctx, alice, rooms.Send{Room: "lobby", Text: "m2", ClientMsgID: "c2"}); err != nil || fresh || m != stored[2] {
		t.Errorf("the retry of a moved send = %+v, %v, %v; want the original %+v", m, fresh, err, stored[2])
	}
	if _, fresh, err := chat.Send(ctx, bob, rooms.Send{Room: "lobby", Text: "hi"}); err != nil || !fresh {
		t.Errorf("bob's send after the move = %v, %v", fresh, err)
	}
	if c, err := chat.Leave(ctx, alice, "dev"); err != nil || c != (rooms.Change{Member: true, Room: true}) {
		t.Errorf("alice leaving dev = %+v, %v; want her gone and the room empty", c, err)
	}
	keys, err := storeScanAll(t, client, prefix+":*")
	must(err)
	for _, k := range keys {
		if isOldLayoutKey(prefix, k) {
			t.Errorf("the old key %q is still there", k)
		}
	}
}

// storeScanAll returns the keys matching pattern on every master.
func storeScanAll(t *testing.T, client goredis.UniversalClient, pattern string) ([]string, error) {
	t.Helper()
	var out []string
	scan := func(c goredis.Cmdable) error {
		iter := c.Scan(t.Context(), 0, pattern, 1000).Iterator()
		for iter.Next(t.Context()) {
			out = append(out, iter.Val())
		}
		return iter.Err()
	}
	if cc, ok := client.(*goredis.ClusterClient); ok {
		var mu sync.Mutex
		err := cc.ForEachMaster(t.Context(), func(_ context.Context, node *goredis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return scan(node)
		})
		return out, err
	}
	return out, scan(client)
}

func ids(msgs []rooms.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
