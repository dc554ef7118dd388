package redis

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/rooms"
)

// storeRoundTrips counts the round trips to Redis servers: each command
// and each pipeline (a transaction too) is one.
type storeRoundTrips struct{ n atomic.Int64 }

func (c *storeRoundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *storeRoundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *storeRoundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestRedisStoreMessageRoundTrips(t *testing.T) {
	client := storeRedisServer(t)
	counter := &storeRoundTrips{}
	client.AddHook(counter)
	storeMessageRoundTrips(t, client, counter)
}

// storeMessageRoundTrips sends messages through a rooms.Chat on the Redis
// stores of client, whose servers count their round trips in counter:
// each send, with or without a clientMsgId, a retry and a refused one,
// costs one.
func storeMessageRoundTrips(t *testing.T, client goredis.UniversalClient, counter *storeRoundTrips) {
	ctx := t.Context()
	chat, err := rooms.NewChat(rooms.Limits{PendingWait: time.Second}, storeNewStores(t, client, storeNewPrefix()))
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := rooms.User{ID: "alice", Name: "Alice"}, rooms.User{ID: "bob", Name: "Bob"}
	if _, err := chat.Join(ctx, alice, "lobby"); err != nil {
		t.Fatal(err)
	}
	// The first run of a script on a server loads it (NOSCRIPT, then EVAL).
	if _, _, err := chat.Send(ctx, alice, rooms.Send{Room: "lobby", Text: "warm up", ClientMsgID: "w"}); err != nil {
		t.Fatal(err)
	}
	var first rooms.Message
	for _, c := range []struct {
		name  string
		send  func() (rooms.Message, bool, error)
		fresh bool
		code  rooms.Code
	}{
		{"a message", func() (rooms.Message, bool, error) {
			return chat.Send(ctx, alice, rooms.Send{Room: "lobby", Text: "hi"})
		}, true, ""},
		{"a message with a clientMsgId", func() (rooms.Message, bool, error) {
			m, fresh, err := chat.Send(ctx, alice, rooms.Send{Room: "lobby", Text: "once", ClientMsgID: "c1"})
			first = m
			return m, fresh, err
		}, true, ""},
		{"its retry", func() (rooms.Message, bool, error) {
			m, fresh, err := chat.Send(ctx, alice, rooms.Send{Room: "lobby", Text: "once", ClientMsgID: "c1"})
			if err == nil && m != first {
				t.Errorf("the retry returned %+v, want the original %+v", m, first)
			}
			return m, fresh, err
		}, false, ""},
		{"a non-member's message", func() (rooms.Message, bool, error) {
			return chat.Send(ctx, bob, rooms.Send{Room: "lobby", Text: "hi", ClientMsgID: "c2"})
		}, false, rooms.CodeForbidden},
		{"a server API message", func() (rooms.Message, bool, error) {
			return chat.Post(ctx, bob, rooms.Send{Room: "lobby", Text: "hi", ClientMsgID: "c3"})
		}, true, ""},
	} {
		before := counter.n.Load()
		_, fresh, err := c.send()
		trips := counter.n.Load() - before
		var e *rooms.Error
		switch {
		case c.code == "" && err != nil, c.code != "" && (!errors.As(err, &e) || e.Code != c.code):
			t.Errorf("%s: err = %v, want code %q", c.name, err, c.code)
		case err == nil && fresh != c.fresh:
			t.Errorf("%s: fresh = %v, want %v", c.name, fresh, c.fresh)
		}
		if trips != 1 {
			t.Errorf("%s took %d Redis round trips, want 1", c.name, trips)
		}
	}
}
