package redis

import (
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
)

// TestRedisHistoryTTL: a room's stream expires history.ttl after its last
// message, through Append, AppendIfMember and StoreSend, and without a
// TTL it does not expire.
func TestRedisHistoryTTL(t *testing.T) {
	client := storeRedisServer(t)
	ctx := t.Context()
	prefix := storeNewPrefix()
	h, err := NewRedisHistory(client, RedisHistoryOptions{Prefix: prefix, Size: 10, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	members, err := NewRedisMembership(client, RedisMembershipOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	idem, err := NewRedisIdempotency(client, RedisIdempotencyOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	mh, err := NewRedisMemberHistory(h, members, idem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Append(ctx, rooms.Message{Room: "a", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := members.Join(ctx, "u", "b", 10); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := mh.AppendIfMember(ctx, rooms.Message{Room: "b", UserID: "u", Text: "x"}); err != nil || !ok {
		t.Fatalf("AppendIfMember: %v %v", ok, err)
	}
	if _, err := members.Join(ctx, "u", "c", 10); err != nil {
		t.Fatal(err)
	}
	if res, err := mh.StoreSend(ctx, rooms.Message{Room: "c", UserID: "u", Text: "x"}, rooms.SendStep{MemberOnly: true, Key: "c\x00u\x00k"}); err != nil || res.Outcome != rooms.SendStored {
		t.Fatalf("StoreSend: %+v %v", res, err)
	}
	for _, room := range []string{"a", "b", "c"} {
		ttl, err := client.PTTL(ctx, h.key(room)).Result()
		if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("room %s: TTL %v (%v), want about 1h", room, ttl, err)
		}
	}
	forever, err := NewRedisHistory(client, RedisHistoryOptions{Prefix: storeNewPrefix(), Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forever.Append(ctx, rooms.Message{Room: "a", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := client.PTTL(ctx, forever.key("a")).Result(); ttl != -1 {
		t.Errorf("without a TTL the stream has TTL %v, want none (-1)", ttl)
	}
}
