package sioadapter

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/testkit"
)

// storedTestLua stands for a store's script: it refuses when ARGV[1] is
// "no", and otherwise gives the message an id from a counter (KEYS[1]).
const storedTestLua = `
if ARGV[1] == 'no' then return {'refused'} end
local id = redis.call('INCR', KEYS[1]) .. '-0'
`

// scriptCalls is a line of INFO commandstats.
type scriptCalls struct{ calls, failed int64 }

// storedScriptCalls returns the EVALSHA and EVAL calls of the Redis server.
func storedScriptCalls(t *testing.T, rdb *goredis.Client) (evalsha, eval scriptCalls) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		var c scriptCalls
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				c.calls = n
			case "failed_calls":
				c.failed = n
			}
		}
		if name == "cmdstat_evalsha" {
			evalsha = c
		} else {
			eval = c
		}
	}
	return evalsha, eval
}

// storedTestPair starts two instances and waits until each knows the
// other sets a stored broadcast's id.
func storedTestPair(t *testing.T, r *testkit.RedisServer, prefix string, recoveryMs int64) (a, b *adapterTestNode) {
	t.Helper()
	a = newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: recoveryMs})
	b = newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: recoveryMs})
	waitNodes(t, 2, a, b)
	adapterWaitFor(t, "the instances to learn what the other understands", func() bool {
		return a.builder.nodes.storedOK.Load() && b.builder.nodes.storedOK.Load()
	})
	return a, b
}

func storedTestOpts(room string) *socket.BroadcastOptions {
	return &socket.BroadcastOptions{Rooms: types.NewSet(socket.Room(room))}
}

// A store's script stores and broadcasts in one EVAL: both instances'
// sockets get the event with the id the script gave, and the offset the
// recovery stream gave; a session restored from the stream gets the id
// too; a refusal broadcasts nothing.
func TestAdapterStoredBroadcast(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	ctx := context.Background()
	for _, recovery := range []bool{true, false} {
		t.Run(fmt.Sprintf("recovery=%v", recovery), func(t *testing.T) {
			prefix := fmt.Sprintf("t-stored-%v", recovery)
			var recoveryMs int64
			if recovery {
				recoveryMs = 60_000
			}
			a, b := storedTestPair(t, r, prefix, recoveryMs)
			ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
			cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
			ca.waitReady()
			cb.waitReady()
			waitSubscribers(t, mon, prefix+":room:/:r", 2)
			before := cb.offset()

			var storedIDs []string
			prepare := func(text string) *StoredBroadcast {
				t.Helper()
				sb, ok := a.adapter().PrepareStored([]any{"m", map[string]any{"id": "", "text": text}}, 1, storedTestOpts("r"),
					func(id string) { storedIDs = append(storedIDs, id) }).(*StoredBroadcast)
				if !ok {
					t.Fatal("PrepareStored returned no broadcast on one Redis server with every instance up to date")
				}
				return sb
			}
			// Redis without the script (restarted, say): EVALSHA fails and
			// runs nothing, and the text goes once.
			if err := mon.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			shaBefore, evalBefore := storedScriptCalls(t, mon)
			vals, err := prepare("hi").Run(ctx, storedTestLua, []string{prefix + ":ctr"}, []any{"yes"})
			if err != nil {
				t.Fatal(err)
			}
			sha, eval := storedScriptCalls(t, mon)
			if sha.calls-shaBefore.calls != 1 || sha.failed-shaBefore.failed != 1 || eval.calls-evalBefore.calls != 1 {
				t.Errorf("without the script in Redis: EVALSHA %+v then %+v, EVAL %+v then %+v; want one failed EVALSHA, one EVAL",
					shaBefore, sha, evalBefore, eval)
			}
			if len(vals) < 3 || vals[0] != "stored" || vals[1] != "1-0" {
				t.Fatalf("the script answered %#v, want [stored 1-0 <offset>]", vals)
			}
			if !slices.Equal(storedIDs, []string{"1-0"}) {
				t.Errorf("onStored was called with %v, want [1-0]", storedIDs)
			}
			storedIDs = nil
			want := []any{"m", map[string]any{"id": "1-0", "text": "hi"}}
			if recovery {
				newest, err := mon.XRevRangeN(ctx, prefix+":recovery", "+", "-", 1).Result()
				if err != nil || len(newest) != 1 {
					t.Fatalf("the recovery stream's newest entry: %v, %v", newest, err)
				}
				if vals[2] != newest[0].ID {
					t.Errorf("the script answered the offset %v, the stream's newest entry is %s", vals[2], newest[0].ID)
				}
				want = append(want, newest[0].ID)
			} else if vals[2] != "" {
				t.Errorf("without recovery the script answered the offset %q, want none", vals[2])
			}
			if got := ca.next(); !reflect.DeepEqual(got, want) {
				t.Errorf("the local socket got %#v, want %#v", got, want)
			}
			if got := cb.next(); !reflect.DeepEqual(got, want) {
				t.Errorf("the remote socket got %#v, want %#v", got, want)
			}

			// With the script in Redis, one EVALSHA and nothing else.
			shaBefore, evalBefore = storedScriptCalls(t, mon)
			vals2, err := prepare("again").Run(ctx, storedTestLua, []string{prefix + ":ctr"}, []any{"yes"})
			if err != nil || len(vals2) < 2 || vals2[1] != "2-0" {
				t.Fatalf("the second stored broadcast: %#v, %v", vals2, err)
			}
			sha, eval = storedScriptCalls(t, mon)
			if sha.calls-shaBefore.calls != 1 || sha.failed != shaBefore.failed || eval.calls != evalBefore.calls {
				t.Errorf("with the script in Redis: EVALSHA %+v then %+v, EVAL %+v then %+v; want one EVALSHA that succeeded",
					shaBefore, sha, evalBefore, eval)
			}
			for _, c := range []*adapterTestClient{ca, cb} {
				if got := c.next(); len(got) < 2 || !reflect.DeepEqual(got[1], map[string]any{"id": "2-0", "text": "again"}) {
					t.Errorf("the second stored broadcast arrived as %#v", got)
				}
			}

			// A refusal publishes nothing and delivers nothing.
			vals, err = prepare("no").Run(ctx, storedTestLua, []string{prefix + ":ctr"}, []any{"no"})
			if err != nil || !reflect.DeepEqual(vals, []any{"refused"}) {
				t.Fatalf("the refusing script answered %#v, %v; want [refused]", vals, err)
			}
			_ = a.io.To("r").Emit("fence")
			if names := adapterEventNames(cb.until("fence")); len(names) != 0 {
				t.Errorf("after a refusal the remote socket got %v, want nothing", names)
			}
			if names := adapterEventNames(ca.until("fence")); len(names) != 0 {
				t.Errorf("after a refusal the local socket got %v, want nothing", names)
			}
			if !recovery {
				return
			}

			// A session persisted before the broadcast gets it back from the
			// stream, id and all.
			b.adapter().PersistSession(&socket.SessionToPersist{Sid: "s-gone", Pid: "p-gone", Rooms: types.NewSet(socket.Room("r"))})
			sess, err := b.adapter().RestoreSession("p-gone", before)
			if err != nil || sess == nil {
				t.Fatalf("restoring the session: %v, %v", sess, err)
			}
			var restored []any
			for _, p := range sess.MissedPackets {
				if args, ok := p.([]any); ok && len(args) > 0 && args[0] == "m" && restored == nil {
					restored = args // the first of the two
				}
			}
			if !reflect.DeepEqual(restored, want) {
				t.Errorf("the restored session got %#v, want %#v", restored, want)
			}
		})
	}
}

// PrepareStored declines what it cannot do, so that the caller stores and
// broadcasts the usual way: no map for the id, volatile and local
// broadcasts, and an instance alive that would not set the id.
func TestAdapterStoredBroadcastDeclines(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-stored-declines"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
	volatile := storedTestOpts("r")
	volatile.Flags = &socket.BroadcastFlags{}
	volatile.Flags.Volatile = true
	local := storedTestOpts("r")
	local.Flags = &socket.BroadcastFlags{}
	local.Flags.Local = true
	for _, c := range []struct {
		name  string
		data  []any
		idArg int
		opts  *socket.BroadcastOptions
	}{
		{"no map", []any{"m", "text"}, 1, storedTestOpts("r")},
		{"argument out of range", []any{"m", map[string]any{}}, 2, storedTestOpts("r")},
		{"the event name", []any{"m", map[string]any{}}, 0, storedTestOpts("r")},
		{"volatile", []any{"m", map[string]any{}}, 1, volatile},
		{"local", []any{"m", map[string]any{}}, 1, local},
	} {
		if sb := a.adapter().PrepareStored(c.data, c.idArg, c.opts, nil); sb != nil {
			t.Errorf("%s: PrepareStored returned %#v, want nil", c.name, sb)
		}
	}

	oldOpts := adapterTestOptions(t, prefix)
	oldOpts.legacyWire = true
	old := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: oldOpts, recoveryMs: 60_000})
	waitNodes(t, 2, a, old)
	if sb := a.adapter().PrepareStored([]any{"m", map[string]any{}}, 1, storedTestOpts("r"), nil); sb != nil {
		t.Error("PrepareStored returned a broadcast while an instance that would not set the id is alive")
	}
	old.builder.Close()
	adapterWaitFor(t, "the older instance to leave", func() bool {
		return a.adapter().PrepareStored([]any{"m", map[string]any{}}, 1, storedTestOpts("r"), nil) != nil
	})
}

// A stored broadcast whose caller stopped waiting before the publish loop
// sent it is never sent: the caller was told it failed, so the write must
// not happen behind its back. Redis is paused while an earlier script
// holds the loop; the second caller gives up meanwhile.
func TestAdapterStoredBroadcastAbandoned(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	ctx := context.Background()
	const prefix = "t-stored-abandoned"
	for attempt := range 5 {
		firstKey, secondKey := fmt.Sprintf("%s:first%d", prefix, attempt), fmt.Sprintf("%s:second%d", prefix, attempt)
		a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
		prepare := func() *StoredBroadcast {
			sb, ok := a.adapter().PrepareStored([]any{"m", map[string]any{"id": ""}}, 1, storedTestOpts("r"), nil).(*StoredBroadcast)
			if !ok {
				t.Fatal("PrepareStored returned no broadcast")
			}
			return sb
		}
		first, second := prepare(), prepare()
		if err := mon.Do(ctx, "CLIENT", "PAUSE", 800, "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
		var firstDone atomic.Bool
		go func() {
			_, _ = first.Run(ctx, storedTestLua, []string{firstKey}, []any{"yes"})
			firstDone.Store(true)
		}()
		time.Sleep(50 * time.Millisecond) // the loop is waiting on Redis with the first
		wait, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := second.Run(wait, storedTestLua, []string{secondKey}, []any{"yes"})
		cancel()
		if err == nil {
			t.Fatal("the second script succeeded while Redis was paused")
		}
		adapterWaitFor(t, "the first script's caller to return", firstDone.Load)
		if err := mon.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Fatal(err)
		}
		// A fence through the same loop: once it has run, the second
		// script would have too.
		fence := prepare()
		if _, err := fence.Run(ctx, storedTestLua, []string{prefix + ":fence"}, []any{"yes"}); err != nil {
			t.Fatal(err)
		}
		// The first one's outcome is unknown: its reply timed out.
		if n, err := mon.Exists(ctx, secondKey).Result(); err != nil || n != 0 {
			t.Fatalf("attempt %d: the script whose caller gave up ran (%d, %v)", attempt, n, err)
		}
	}
}

// Stored broadcasts keep their place among the instance's other
// broadcasts: a socket on another instance gets them in the order they
// were sent, since both go through the publish queue.
func TestAdapterStoredBroadcastOrder(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	ctx := context.Background()
	const prefix = "t-stored-order"
	a, b := storedTestPair(t, r, prefix, 60_000)
	cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
	cb.waitReady()
	waitSubscribers(t, mon, prefix+":room:/:r", 1)
	var want []string
	for i := range 50 {
		plain, stored := fmt.Sprintf("p%d", i), fmt.Sprintf("s%d", i)
		_ = a.io.To("r").Emit(plain)
		sb, ok := a.adapter().PrepareStored([]any{stored, map[string]any{"id": ""}}, 1, storedTestOpts("r"), nil).(*StoredBroadcast)
		if !ok {
			t.Fatal("PrepareStored returned no broadcast")
		}
		if _, err := sb.Run(ctx, storedTestLua, []string{prefix + ":ctr"}, []any{"yes"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, plain, stored)
	}
	_ = a.io.To("r").Emit("fence")
	if got := adapterEventNames(cb.until("fence")); !slices.Equal(got, want) {
		t.Fatalf("the socket on the other instance got\n%v\nwant\n%v", got, want)
	}
}
