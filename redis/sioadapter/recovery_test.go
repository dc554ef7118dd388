package sioadapter

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chatd/chatd/internal/testkit"
)

// A client drops its connection on one instance, misses packets broadcast
// from both instances, and resumes its session on the other instance.
func TestAdapterRecoveryAcrossInstances(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-recover"
	var aCount adapterKindCounter
	aOpts := adapterTestOptions(t, prefix)
	aOpts.Hooks = aCount.hooks()
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: aOpts, recoveryMs: 60_000})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
	waitNodes(t, 2, a, b)
	mon := r.Client()

	c := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "name": "Ann", "rooms": []string{"r"}})
	ready := c.waitReady()
	if c.pid == "" {
		t.Fatal("no private session id in the CONNECT packet")
	}
	offset := c.offset()
	if !validOffset(offset) || ready[len(ready)-1] != offset {
		t.Fatalf("socket.Emit did not carry a stream offset: %v", ready)
	}

	// An emit to a local socket is recorded but stays on this instance.
	recorded := a.builder.Stats().Recorded
	sent := aCount.get("tx:broadcast")
	_ = a.io.To(socket.Room(c.sid)).Emit("private")
	_ = a.io.Emit("fence")
	if names := adapterEventNames(c.until("fence")); !slices.Equal(names, []string{"private"}) {
		t.Fatalf("got %v, want [private]", names)
	}
	adapterWaitFor(t, "the fence to be published", func() bool { return aCount.get("tx:broadcast") > sent })
	if got := aCount.get("tx:broadcast"); got != sent+1 {
		t.Errorf("an emit to a local socket was published to Redis (%d broadcasts published, want only the fence)", got-sent)
	}
	if got := a.builder.Stats().Recorded; got != recorded+2 {
		t.Errorf("recorded %d packets, want 2", got-recorded)
	}
	offset = c.offset()

	c.drop()
	adapterWaitFor(t, "the session to be persisted", func() bool {
		n, err := mon.Exists(context.Background(), prefix+":session:"+c.pid).Result()
		return err == nil && n == 1
	})

	// Missed while disconnected, in this order.
	_ = b.io.To("r").Emit("m", 1)
	_ = b.io.To("other").Emit("not-for-you")
	_ = a.io.To(socket.Room(c.sid)).Emit("direct")
	_ = b.io.Emit("all", 2)
	_ = b.io.To("r").Except(socket.Room(c.sid)).Emit("excepted")
	_ = b.io.Volatile().Emit("volatile")
	_ = a.io.To("r").Emit("m", 3)

	c2 := dialAdapterTestClient(t, b.url, map[string]any{"pid": c.pid, "offset": offset})
	if c2.sid != c.sid {
		t.Fatalf("resumed socket id %q, want the old one %q", c2.sid, c.sid)
	}
	missed := c2.until("ready")
	wantNames := []string{"m", "direct", "all", "m"}
	if names := adapterEventNames(missed); !slices.Equal(names, wantNames) {
		t.Fatalf("replayed %v, want %v", names, wantNames)
	}
	var offsets []string
	for _, ev := range missed {
		offsets = append(offsets, ev[len(ev)-1].(string))
	}
	if !slices.IsSortedFunc(offsets, adapterCompareStreamIDs) || offsets[0] == offset {
		t.Errorf("replayed offsets %v are not increasing after %s", offsets, offset)
	}
	if !reflect.DeepEqual(missed[0][:2], []any{"m", float64(1)}) || !reflect.DeepEqual(missed[3][:2], []any{"m", float64(3)}) {
		t.Errorf("replayed packets %v lost their arguments", missed)
	}

	// The resumed socket is back in its room, with its data, on the other
	// instance; nothing is delivered twice.
	waitSubscribers(t, mon, prefix+":room:/:r", 1)
	_ = a.io.To("r").Emit("live")
	_ = a.io.Emit("fence")
	if names := adapterEventNames(c2.until("fence")); !slices.Equal(names, []string{"live"}) {
		t.Errorf("after resuming got %v, want [live]", names)
	}
	socks, err := a.fetch(a.all())
	if err != nil || len(socks) != 1 {
		t.Fatalf("fetchSockets = %d, %v", len(socks), err)
	}
	if data, _ := socks[0].Data().(map[string]any); data["userId"] != "u1" {
		t.Errorf("resumed socket data = %#v, want its data from before", socks[0].Data())
	}

	// A session resumes once: while the resumed socket is connected, its
	// pid and offset give a fresh session.
	c3 := dialAdapterTestClient(t, a.url, map[string]any{"pid": c.pid, "offset": offset})
	if c3.sid == c.sid {
		t.Error("the same session resumed twice")
	}
}

// A recorded broadcast reaches the sockets of both instances with the same
// offset, the recovery stream's newest id, and is published once: recorded
// and published in one script on one Redis server, or one after the other
// (as on Redis Cluster).
func TestAdapterRecordedBroadcastCarriesItsOffset(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	for _, oneServer := range []bool{true, false} {
		t.Run(fmt.Sprintf("oneServer=%v", oneServer), func(t *testing.T) {
			prefix := fmt.Sprintf("t-offset-%v", oneServer)
			var aCount, bCount adapterKindCounter
			aOpts, bOpts := adapterTestOptions(t, prefix), adapterTestOptions(t, prefix)
			aOpts.Hooks, bOpts.Hooks = aCount.hooks(), bCount.hooks()
			a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: aOpts, recoveryMs: 60_000, separateRecord: !oneServer})
			b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: bOpts, recoveryMs: 60_000})
			waitNodes(t, 2, a, b)
			adapterWaitFor(t, "the instances to learn what the other understands", func() bool {
				return a.builder.nodes.offsetOK.Load() && b.builder.nodes.offsetOK.Load()
			})
			ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
			cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
			ca.waitReady()
			cb.waitReady()
			waitSubscribers(t, mon, prefix+":room:/:r", 2)

			sent, received := aCount.get("tx:broadcast"), bCount.get("rx:broadcast")
			evals := adapterEvalCalls(t, mon)
			_ = a.io.To("r").Emit("m", 1, map[string]any{"text": "hi"})
			gotA, gotB := ca.next(), cb.next()
			newest, err := mon.XRevRangeN(context.Background(), prefix+":recovery", "+", "-", 1).Result()
			if err != nil || len(newest) != 1 {
				t.Fatalf("the recovery stream's newest entry: %v, %v", newest, err)
			}
			want := []any{"m", float64(1), map[string]any{"text": "hi"}, newest[0].ID}
			if !reflect.DeepEqual(gotA, want) {
				t.Errorf("the local socket got %#v, want %#v", gotA, want)
			}
			if !reflect.DeepEqual(gotB, want) {
				t.Errorf("the remote socket got %#v, want %#v", gotB, want)
			}
			adapterWaitFor(t, "the other instance to count the broadcast", func() bool { return bCount.get("rx:broadcast") > received })
			if n := aCount.get("tx:broadcast") - sent; n != 1 {
				t.Errorf("the broadcast was published %d times, want once", n)
			}
			if n := bCount.get("rx:broadcast") - received; n != 1 {
				t.Errorf("the other instance received %d broadcasts, want 1", n)
			}
			wantEvals := int64(0)
			if oneServer {
				wantEvals = 1
			}
			if n := adapterEvalCalls(t, mon) - evals; n != wantEvals {
				t.Errorf("%d scripts ran for the broadcast, want %d", n, wantEvals)
			}

			// Recorded and unrecorded (volatile) broadcasts of one instance
			// arrive in the order they were sent. A volatile one may be
			// dropped on the way to a busy socket, but never overtaken.
			var sent2, recorded2 []string
			for i := range 20 {
				v, m := fmt.Sprintf("v%d", i), fmt.Sprintf("m%d", i)
				_ = a.io.Volatile().To("r").Emit(v)
				_ = a.io.To("r").Emit(m)
				sent2 = append(sent2, v, m)
				recorded2 = append(recorded2, m)
			}
			_ = a.io.Emit("fence")
			got2 := adapterEventNames(cb.until("fence"))
			rest := sent2
			for _, name := range got2 {
				i := slices.Index(rest, name)
				if i < 0 {
					t.Fatalf("the remote socket got %v: out of the order %v", got2, sent2)
				}
				rest = rest[i+1:]
			}
			if got := slices.DeleteFunc(slices.Clone(got2), func(n string) bool { return n[0] == 'v' }); !slices.Equal(got, recorded2) {
				t.Errorf("the remote socket got the recorded broadcasts %v, want %v", got, recorded2)
			}
		})
	}
}

// When the recovery stream refuses an entry, the broadcast still reaches
// the sockets of both instances, with an offset no restore accepts.
func TestAdapterUnrecordedBroadcastStillArrives(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	for _, oneServer := range []bool{true, false} {
		t.Run(fmt.Sprintf("oneServer=%v", oneServer), func(t *testing.T) {
			prefix := fmt.Sprintf("t-unrecorded-%v", oneServer)
			a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000, separateRecord: !oneServer})
			b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
			waitNodes(t, 2, a, b)
			ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
			cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
			ca.waitReady()
			cb.waitReady()
			waitSubscribers(t, mon, prefix+":room:/:r", 2)
			// A key of the wrong type: every XADD to it fails.
			if err := mon.Del(context.Background(), prefix+":recovery").Err(); err != nil {
				t.Fatal(err)
			}
			if err := mon.Set(context.Background(), prefix+":recovery", "not a stream", 0).Err(); err != nil {
				t.Fatal(err)
			}
			errs := a.builder.Stats().RecordErrors
			_ = a.io.To("r").Emit("m", 1)
			want := []any{"m", float64(1), unrecordedOffset}
			if got := ca.next(); !reflect.DeepEqual(got, want) {
				t.Errorf("the local socket got %#v, want %#v", got, want)
			}
			if got := cb.next(); !reflect.DeepEqual(got, want) {
				t.Errorf("the remote socket got %#v, want %#v", got, want)
			}
			if n := a.builder.Stats().RecordErrors - errs; n != 1 {
				t.Errorf("%d record errors counted, want 1", n)
			}
		})
	}
}

// During a rolling upgrade, an instance that does not understand
// wireMessage.Offset still gets each broadcast with its offset in the
// data: the others record and publish separately until it is gone.
func TestAdapterOffsetWaitsForEveryInstance(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	const prefix = "t-upgrade"
	oldOpts := adapterTestOptions(t, prefix)
	oldOpts.legacyWire = true
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
	old := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: oldOpts, recoveryMs: 60_000})
	waitNodes(t, 2, a, old)
	cOld := dialAdapterTestClient(t, old.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
	cOld.waitReady()
	waitSubscribers(t, mon, prefix+":room:/:r", 1)
	if a.builder.nodes.offsetOK.Load() {
		t.Fatal("an instance without the Offset feature is alive, yet broadcasts would use it")
	}
	evals := adapterEvalCalls(t, mon)
	_ = a.io.To("r").Emit("m", 1)
	got := cOld.next()
	if len(got) != 3 || got[0] != "m" || !validOffset(fmt.Sprint(got[2])) {
		t.Fatalf("the socket on the older instance got %#v, want [m 1 <offset>]", got)
	}
	if n := adapterEvalCalls(t, mon) - evals; n != 0 {
		t.Errorf("%d scripts ran while an older instance was alive, want 0", n)
	}
	// Once it is gone, the one-script path is back.
	old.builder.Close()
	adapterWaitFor(t, "the older instance to leave", func() bool { return a.builder.nodes.offsetOK.Load() })
}

func adapterCompareStreamIDs(x, y string) int {
	xm, xs, _ := strings.Cut(x, "-")
	ym, ys, _ := strings.Cut(y, "-")
	if c := adapterCompareDecimal(xm, ym); c != 0 {
		return c
	}
	return adapterCompareDecimal(xs, ys)
}

func adapterCompareDecimal(x, y string) int {
	if len(x) != len(y) {
		return len(x) - len(y)
	}
	return strings.Compare(x, y)
}

// The refusals of RestoreSession: each gives a fresh session (nil, nil).
func TestAdapterRecoveryRefusals(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-refuse"
	n := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix), recoveryMs: 60_000})
	fewOpts := adapterTestOptions(t, prefix+"-few")
	fewOpts.RecoveryMaxPackets = 3
	few := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: fewOpts, recoveryMs: 60_000})
	short := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix+"-short"), recoveryMs: 200})
	mon := r.Client()
	ctx := context.Background()
	stream := prefix + ":recovery"
	waitNodes(t, 1, n, few, short)

	persist := func(node *adapterTestNode, pid string) {
		t.Helper()
		node.adapter().PersistSession(&socket.SessionToPersist{
			Sid:   socket.SocketId("sid-" + pid),
			Pid:   socket.PrivateSessionId(pid),
			Rooms: types.NewSet[socket.Room](socket.Room("sid-"+pid), "r1"),
			Data:  map[string]any{"userId": "u-" + pid},
		})
	}
	// mark broadcasts a packet and returns its offset.
	mark := func(node *adapterTestNode, key string) string {
		t.Helper()
		_ = node.io.Emit("mark")
		last, err := mon.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil || len(last) != 1 {
			t.Fatalf("reading the recovery stream: %v", err)
		}
		return last[0].ID
	}
	restore := func(node *adapterTestNode, pid, offset string) *socket.Session {
		t.Helper()
		s, err := node.adapter().RestoreSession(socket.PrivateSessionId(pid), offset)
		if err != nil {
			t.Fatalf("RestoreSession(%q, %q): %v", pid, offset, err)
		}
		return s
	}

	t.Run("rooms, except and local", func(t *testing.T) {
		persist(n, "ok")
		off := mark(n, stream)
		_ = n.io.To("r1").Emit("a")
		_ = n.io.To("r2").Emit("b")
		_ = n.io.To("r1").Except("sid-ok").Emit("c")
		_ = n.io.To("sid-ok").Emit("d")
		_ = n.io.Local().Emit("e")
		_ = n.io.Volatile().Emit("f")
		_ = n.io.Emit("g", []byte{1, 2})
		s := restore(n, "ok", off)
		if s == nil {
			t.Fatal("no session")
		}
		var names []string
		for _, p := range s.MissedPackets {
			names = append(names, p.([]any)[0].(string))
		}
		if !slices.Equal(names, []string{"a", "d", "e", "g"}) {
			t.Errorf("missed %v, want [a d e g]", names)
		}
		if g := s.MissedPackets[3].([]any); !reflect.DeepEqual(g[1], []byte{1, 2}) {
			t.Errorf("binary argument came back as %#v", g[1])
		}
		if s.Sid != "sid-ok" || !s.Rooms.Has("r1") || s.Data.(map[string]any)["userId"] != "u-ok" {
			t.Errorf("session = %+v", s.SessionToPersist)
		}
		if again := restore(n, "ok", off); again != nil {
			t.Error("the session restored twice")
		}
	})

	t.Run("forged offset", func(t *testing.T) {
		persist(n, "owner")
		off := mark(n, stream)
		_ = n.io.To("r1").Emit("missed")
		// Well-formed offsets that are not in the stream: the owner's
		// session must survive them.
		for _, forged := range []string{"1-1", "1-0", "18446744073709551615-18446744073709551615"} {
			if s := restore(n, "owner", forged); s != nil {
				t.Errorf("offset %q restored a session", forged)
			}
		}
		s := restore(n, "owner", off)
		if s == nil {
			t.Fatal("forged offsets destroyed the session")
		}
		if len(s.MissedPackets) != 1 {
			t.Errorf("missed %d packets, want 1", len(s.MissedPackets))
		}
	})

	t.Run("malformed", func(t *testing.T) {
		off := mark(n, stream)
		for _, bad := range []string{"", "abc", "1", "1-", "-1", "1-1-1", "1-x", " 1-1", "0-0",
			"99999999999999999999999-0", "18446744073709551616-0", "1-1"} {
			persist(n, "p1")
			if s := restore(n, "p1", bad); s != nil {
				t.Errorf("offset %q restored a session", bad)
			}
		}
		for _, bad := range []string{"", "../x", "a b", "a:b", strings.Repeat("a", 65), "unknown"} {
			if s := restore(n, bad, off); s != nil {
				t.Errorf("pid %q restored a session", bad)
			}
		}
	})

	t.Run("trimmed", func(t *testing.T) {
		persist(n, "trim")
		off := mark(n, stream)
		_ = n.io.Emit("after")
		if err := mon.XTrimMaxLen(ctx, stream, 1).Err(); err != nil {
			t.Fatal(err)
		}
		if s := restore(n, "trim", off); s != nil {
			t.Error("restored from a trimmed offset")
		}
	})

	t.Run("too many packets", func(t *testing.T) {
		fewStream := prefix + "-few:recovery"
		persist(few, "many")
		off := mark(few, fewStream)
		for range 4 {
			_ = few.io.Emit("x")
		}
		if s := restore(few, "many", off); s != nil {
			t.Errorf("restored %d packets past RecoveryMaxPackets", len(s.MissedPackets))
		}
		persist(few, "enough")
		off = mark(few, fewStream)
		for range 3 {
			_ = few.io.Emit("x")
		}
		if s := restore(few, "enough", off); s == nil || len(s.MissedPackets) != 3 {
			t.Errorf("restore of exactly RecoveryMaxPackets packets = %+v", s)
		}
	})

	t.Run("expired", func(t *testing.T) {
		persist(short, "old")
		off := mark(short, prefix+"-short:recovery")
		adapterWaitFor(t, "the session to expire", func() bool {
			n, err := mon.Exists(ctx, prefix+"-short:session:old").Result()
			return err == nil && n == 0
		})
		if s := restore(short, "old", off); s != nil {
			t.Error("an expired session restored")
		}
	})

	t.Run("aged", func(t *testing.T) {
		// Entries older than the maximum disconnection duration (200 ms on
		// this node) leave the stream in whole nodes of the stream: fill
		// more than one node, then keep recording until the first is gone.
		shortStream := prefix + "-short:recovery"
		first := mark(short, shortStream)
		for range 150 {
			_ = short.io.Emit("old")
		}
		adapterWaitFor(t, "entries older than the maximum disconnection duration to be trimmed", func() bool {
			_ = short.io.Emit("new")
			got, err := mon.XRangeN(ctx, shortStream, first, first, 1).Result()
			return err == nil && len(got) == 0
		})
		if n, err := mon.XLen(ctx, shortStream).Result(); err != nil || n >= 150 {
			t.Errorf("stream length %d, %v after trimming by age", n, err)
		}
	})

	t.Run("redis down", func(t *testing.T) {
		persist(n, "down")
		off := mark(n, stream)
		r.Stop()
		defer r.Restart()
		s, err := n.adapter().RestoreSession("down", off)
		if s != nil || err == nil {
			t.Errorf("RestoreSession with Redis down = %v, %v; want nil and an error", s, err)
		}
		adapterWaitFor(t, "Ready to turn false", func() bool { return !n.builder.Ready() })
		if off := n.adapter().record([]any{"x"}, adapterNormalizeOpts(nil), time.Minute); off != unrecordedOffset {
			t.Errorf("packet broadcast with Redis down got offset %q, want %q", off, unrecordedOffset)
		}
	})
}

// A namespace outside RecoveryNamespaces records nothing in the recovery
// stream, while the namespaces inside it still do.
func TestAdapterRecoveryNamespaces(t *testing.T) {
	r := testkit.StartRedisServer(t)
	mon := r.Client()
	prefix := "t-recns"
	opts := adapterTestOptions(t, prefix)
	opts.RecoveryNamespaces = []string{"/"}
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: opts, recoveryMs: 60_000})
	other := a.io.Of("/other", nil)
	streamLen := func() int64 {
		n, err := mon.XLen(context.Background(), prefix+":recovery").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	_ = other.Emit("not-recorded", 1)
	_ = other.To("some-room").Emit("not-recorded", 2)
	_ = a.io.Emit("recorded", 3)
	// The broadcasts are published in order, so once the main namespace's
	// entry is in the stream the other namespace's would be too.
	adapterWaitFor(t, "the main namespace's broadcast in the recovery stream", func() bool { return streamLen() >= 1 })
	if n := streamLen(); n != 1 {
		t.Fatalf("the recovery stream holds %d entries, want only the main namespace's 1", n)
	}
}
