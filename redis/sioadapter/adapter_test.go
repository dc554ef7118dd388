package sioadapter

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/internal/testkit"
)

// adapterKindCounter counts messages per kind through AdapterHooks:
// "rx:<kind>" received, "tx:<kind>" published.
type adapterKindCounter struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

func (k *adapterKindCounter) add(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n == nil {
		k.n = make(map[string]int)
	}
	k.n[key]++
}

func (k *adapterKindCounter) hooks() AdapterHooks {
	return AdapterHooks{
		Received:  func(kind string) { k.add("rx:" + kind) },
		Published: func(kind string) { k.add("tx:" + kind) },
	}
}

func (k *adapterKindCounter) get(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n[key]
}

func TestAdapterBroadcastAcrossInstances(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-broadcast"
	var cCount adapterKindCounter
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	cOpts := adapterTestOptions(t, prefix)
	cOpts.Hooks = cCount.hooks()
	c := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: cOpts})
	waitNodes(t, 3, a, b, c)

	ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
	cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r", "muted"}})
	cb2 := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u3", "rooms": []string{"r"}})
	cc := dialAdapterTestClient(t, c.url, map[string]any{"userId": "u4", "rooms": []string{"elsewhere"}})
	for _, cl := range []*adapterTestClient{ca, cb, cb2, cc} {
		cl.waitReady()
	}
	mon := r.Client()
	waitSubscribers(t, mon, prefix+":room:/:r", 2)
	waitSubscribers(t, mon, prefix+":room:/:elsewhere", 1)

	type note struct {
		Text   string `json:"text"`
		At     int64  `json:"at"`
		Hidden string `json:"-"`
	}
	_ = a.io.To("r").Emit("msg", "hello", note{Text: "hi", At: 42, Hidden: "no"}, []byte{1, 2, 3})
	_ = a.io.To("r").Except("muted").Emit("msg2", "not muted")
	_ = a.io.Emit("fence")

	gotA := ca.until("fence")
	if names := adapterEventNames(gotA); !slices.Equal(names, []string{"msg", "msg2"}) {
		t.Fatalf("local member got %v, want [msg msg2]", names)
	}
	want := []any{"msg", "hello", map[string]any{"text": "hi", "at": float64(42)}, []byte{1, 2, 3}}
	if !reflect.DeepEqual(gotA[0], want) {
		t.Errorf("local member got %#v, want %#v", gotA[0], want)
	}
	gotB := cb.until("fence")
	if names := adapterEventNames(gotB); !slices.Equal(names, []string{"msg"}) {
		t.Fatalf("remote member in the excepted room got %v, want [msg]", names)
	}
	if !reflect.DeepEqual(gotB[0], want) {
		t.Errorf("remote member got %#v, want what the local member got %#v", gotB[0], want)
	}
	if names := adapterEventNames(cb2.until("fence")); !slices.Equal(names, []string{"msg", "msg2"}) {
		t.Fatalf("remote member got %v, want [msg msg2]", names)
	}
	if got := cc.until("fence"); len(got) != 0 {
		t.Fatalf("non-member got %v", adapterEventNames(got))
	}
	if n := cCount.get("rx:broadcast"); n != 1 {
		t.Errorf("instance without members of room r received %d broadcasts, want only the fence", n)
	}

	// From an instance without members, and to several rooms at once: each
	// socket gets the packet once.
	_ = c.io.To("r").Emit("from-c")
	_ = c.io.To("r", "elsewhere", "muted").Emit("multi")
	_ = c.io.Emit("fence")
	for _, cl := range []*adapterTestClient{ca, cb, cb2} {
		if names := adapterEventNames(cl.until("fence")); !slices.Equal(names, []string{"from-c", "multi"}) {
			t.Errorf("member of r got %v, want [from-c multi]", names)
		}
	}
	if names := adapterEventNames(cc.until("fence")); !slices.Equal(names, []string{"multi"}) {
		t.Errorf("member of elsewhere got %v, want [multi]", names)
	}

	// socket.broadcast from a remote socket's point of view: everyone but
	// the sender, on every instance.
	_ = b.io.Except(socket.Room(cb.sid)).Emit("all-but-cb")
	_ = b.io.Emit("fence")
	for cl, want := range map[*adapterTestClient][]string{ca: {"all-but-cb"}, cb: nil, cb2: {"all-but-cb"}, cc: {"all-but-cb"}} {
		if names := adapterEventNames(cl.until("fence")); !slices.Equal(names, want) {
			t.Errorf("client %s got %v, want %v", cl.sid, names, want)
		}
	}
}

func TestAdapterRemoteSocketOperations(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-remote"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 2, a, b)
	ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "name": "Ann", "rooms": []string{"lobby"}})
	cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "name": "Bob", "rooms": []string{"lobby"}})
	ca.waitReady()
	cb.waitReady()
	mon := r.Client()
	waitSubscribers(t, mon, prefix+":room:/:"+cb.sid, 1)

	// fetchSockets returns the remote socket with its data.
	socks, err := a.fetch(a.io.In("lobby"))
	if err != nil {
		t.Fatal(err)
	}
	var remote *socket.RemoteSocket
	for _, s := range socks {
		if string(s.Id()) == cb.sid {
			remote = s
		}
	}
	if len(socks) != 2 || remote == nil {
		t.Fatalf("fetchSockets returned %d sockets (remote found: %v), want 2", len(socks), remote != nil)
	}
	data, _ := remote.Data().(map[string]any)
	if data["userId"] != "u2" || data["name"] != "Bob" {
		t.Errorf("remote socket data = %#v, want userId u2 and name Bob", remote.Data())
	}
	if at, ok := data["connectedAt"].(int64); !ok || at <= 0 {
		t.Errorf("remote socket connectedAt = %#v, want a positive int64", data["connectedAt"])
	}
	if !remote.Rooms().Has("lobby") || !remote.Rooms().Has(socket.Room(cb.sid)) {
		t.Errorf("remote socket rooms = %v, want lobby and its own id", remote.Rooms().Keys())
	}
	if remote.Handshake() == nil || remote.Handshake().Auth["userId"] != "u2" {
		t.Errorf("remote socket handshake = %#v, want the auth it connected with", remote.Handshake())
	}

	// Emitting to a remote socket reaches it alone.
	_ = remote.Emit("direct", "x")
	_ = a.io.Emit("fence")
	if got := cb.until("fence"); !reflect.DeepEqual(got, [][]any{{"direct", "x"}}) {
		t.Errorf("remote socket got %v, want [[direct x]]", got)
	}
	if got := ca.until("fence"); len(got) != 0 {
		t.Errorf("other socket got %v", got)
	}

	// socketsJoin on a remote socket.
	remote.Join("vip")
	waitSubscribers(t, mon, prefix+":room:/:vip", 1)
	_ = a.io.To("vip").Emit("vip-only")
	_ = a.io.Emit("fence")
	if names := adapterEventNames(cb.until("fence")); !slices.Equal(names, []string{"vip-only"}) {
		t.Errorf("joined remote socket got %v, want [vip-only]", names)
	}
	if got := ca.until("fence"); len(got) != 0 {
		t.Errorf("socket outside vip got %v", adapterEventNames(got))
	}
	if vip, err := a.fetch(a.io.In("vip")); err != nil || len(vip) != 1 || string(vip[0].Id()) != cb.sid {
		t.Errorf("fetchSockets in vip = %d sockets, %v; want the remote socket", len(vip), err)
	}

	// socketsLeave on a remote socket.
	a.io.In(socket.Room(cb.sid)).SocketsLeave("vip")
	waitSubscribers(t, mon, prefix+":room:/:vip", 0)
	_ = a.io.To("vip").Emit("vip-only")
	_ = a.io.Emit("fence")
	if got := cb.until("fence"); len(got) != 0 {
		t.Errorf("socket that left vip got %v", adapterEventNames(got))
	}

	// disconnectSockets on a remote socket.
	a.io.In(socket.Room(cb.sid)).DisconnectSockets(false)
	if ev := cb.next(); !reflect.DeepEqual(ev, []any{"__disconnect"}) {
		t.Fatalf("remote socket got %v, want a disconnect", ev)
	}
	adapterWaitFor(t, "the disconnected socket to be gone", func() bool {
		all, err := a.fetch(a.all())
		return err == nil && len(all) == 1
	})
}

func TestAdapterServerSideEmit(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-sse"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	c := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 3, a, b, c)

	got := make(chan string, 10)
	for name, n := range map[string]*adapterTestNode{"a": a, "b": b, "c": c} {
		_ = n.io.On("hello", func(args ...any) { got <- name + ":" + args[0].(string) })
		_ = n.io.On("question", func(args ...any) {
			ack := args[len(args)-1].(func([]any, error))
			ack([]any{name + "-answer"}, nil)
		})
	}
	if err := a.io.ServerSideEmit("hello", "world"); err != nil {
		t.Fatal(err)
	}
	heard := []string{<-got, <-got}
	sort.Strings(heard)
	if !slices.Equal(heard, []string{"b:world", "c:world"}) {
		t.Fatalf("listeners heard %v, want b and c", heard)
	}

	type result struct {
		args []any
		err  error
	}
	done := make(chan result, 1)
	if err := a.io.ServerSideEmitWithAck("question", 1)(func(args []any, err error) { done <- result{args, err} }); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	answers := make([]string, 0, len(res.args))
	for _, a := range res.args {
		answers = append(answers, a.(string))
	}
	sort.Strings(answers)
	if !slices.Equal(answers, []string{"b-answer", "c-answer"}) {
		t.Errorf("answers = %v, want one per other instance", answers)
	}
	select {
	case h := <-got:
		t.Errorf("unexpected listener call %s", h)
	default:
	}
}

func TestAdapterBroadcastWithAck(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-ack"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	c := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 3, a, b, c)
	ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
	cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
	cc := dialAdapterTestClient(t, c.url, map[string]any{"userId": "u3"})
	for _, cl := range []*adapterTestClient{ca, cb, cc} {
		cl.waitReady()
	}

	type result struct {
		args []any
		err  error
	}
	done := make(chan result, 1)
	// c has no member of r and still counts itself out; a and b's members
	// answer.
	a.io.To("r").Timeout(adapterTestTimeout).EmitWithAck("question")(func(args []any, err error) { done <- result{args, err} })
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	var answers []string
	for _, arg := range res.args {
		answers = append(answers, arg.(string))
	}
	sort.Strings(answers)
	want := []string{ca.sid, cb.sid}
	sort.Strings(want)
	if !slices.Equal(answers, want) {
		t.Errorf("acknowledgements = %v, want one from each member %v", answers, want)
	}
}

func TestAdapterNodesAndDeadNode(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-nodes"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	c := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 3, a, b, c)
	if n := a.adapter().ServerCount(); n != 3 {
		t.Errorf("ServerCount = %d, want 3", n)
	}

	// c vanishes without a goodbye (a crash): the others notice by the
	// missing heartbeats.
	c.builder.skipGoodbye.Store(true)
	_ = c.builder.Close()
	if c.builder.Ready() {
		t.Error("a closed builder reports ready")
	}
	waitNodes(t, 2, a, b)

	// b leaves cleanly.
	_ = b.builder.Close()
	waitNodes(t, 1, a)
	_ = b.builder.Close() // idempotent
}

func TestAdapterRequestsNeverHang(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-ghost"
	quickOpts := adapterTestOptions(t, prefix)
	quickOpts.RequestTimeout = 200 * time.Millisecond
	patientOpts := adapterTestOptions(t, prefix)
	patientOpts.RequestTimeout = time.Minute // longer than the test may take
	quick := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: quickOpts})
	patient := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: patientOpts})
	waitNodes(t, 2, quick, patient)
	cq := dialAdapterTestClient(t, quick.url, map[string]any{"userId": "u1"})
	cp := dialAdapterTestClient(t, patient.url, map[string]any{"userId": "u2"})
	cq.waitReady()
	cp.waitReady()

	// Garbage on the channels is logged and ignored.
	mon := r.Client()
	junk, err := encodeWire(&wireMessage{Kind: kindBroadcast, From: "junk", Nsp: "/", PacketType: 99, Data: []any{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"\xc1 not msgpack", "", string(junk)} {
		if err := mon.Publish(context.Background(), prefix+":bus", m).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// A ghost instance announces itself once and never answers.
	ghost, err := encodeWire(&wireMessage{Kind: kindHeartbeat, From: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Publish(context.Background(), prefix+":bus", ghost).Err(); err != nil {
		t.Fatal(err)
	}
	adapterWaitFor(t, "the ghost to be counted", func() bool { return quick.builder.Nodes() == 4 && patient.builder.Nodes() == 4 })

	// The quick instance gives up after RequestTimeout, with what it has.
	socks, err := quick.fetch(quick.io.Local()) // local only: no wait
	if err != nil || len(socks) != 1 {
		t.Fatalf("local fetch = %d, %v", len(socks), err)
	}
	socks, err = quick.fetch(quick.all())
	if !errors.Is(err, ErrRequestTimeout) {
		t.Errorf("fetch with a silent instance: err = %v, want ErrRequestTimeout", err)
	}
	if len(socks) != 2 {
		t.Errorf("fetch with a silent instance returned %d sockets, want the 2 of the live instances", len(socks))
	}

	// The patient one stops waiting for the ghost once it is declared dead.
	socks, err = patient.fetch(patient.all())
	if err != nil || len(socks) != 2 {
		t.Errorf("fetch after the silent instance died = %d sockets, %v; want 2, nil", len(socks), err)
	}
	if n := patient.builder.Nodes(); n != 2 {
		t.Errorf("Nodes = %d after the ghost died, want 2", n)
	}
	_ = quick.io.Emit("fence")
	for _, cl := range []*adapterTestClient{cq, cp} {
		if got := cl.until("fence"); len(got) != 0 {
			t.Errorf("the junk broadcast reached a client: %v", got)
		}
	}
}

func TestAdapterRedisOutage(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-outage"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 2, a, b)
	ca := dialAdapterTestClient(t, a.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
	cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u2", "rooms": []string{"r"}})
	ca.waitReady()
	cb.waitReady()
	mon := r.Client()
	room := prefix + ":room:/:r"
	waitSubscribers(t, mon, room, 2)
	_ = a.io.To("r").Emit("before")
	_ = a.io.Emit("fence")
	if names := adapterEventNames(cb.until("fence")); !slices.Equal(names, []string{"before"}) {
		t.Fatalf("remote member got %v before the outage", names)
	}
	ca.until("fence")

	var goroutines []int
	for round := range 3 {
		r.Stop()
		adapterWaitFor(t, "Ready to turn false", func() bool { return !a.builder.Ready() && !b.builder.Ready() })

		// Local delivery goes on; the publish fails without blocking.
		errorsBefore := a.builder.Stats().PublishErrors
		_ = a.io.To("r").Emit("during", round)
		_ = a.io.Local().Emit("fence")
		if got := ca.until("fence"); !reflect.DeepEqual(got, [][]any{{"during", float64(round)}}) {
			t.Fatalf("local member got %v during the outage", got)
		}
		adapterWaitFor(t, "the failed publish to be counted", func() bool { return a.builder.Stats().PublishErrors > errorsBefore })

		var late *adapterTestClient
		if round == 0 {
			// A socket joins a room while Redis is away.
			late = dialAdapterTestClient(t, b.url, map[string]any{"userId": "u3", "rooms": []string{"late"}})
			late.waitReady()
		}

		r.Restart()
		adapterWaitFor(t, "Ready to turn true", func() bool { return a.builder.Ready() && b.builder.Ready() })
		// The per-room subscriptions are back, and the instances see each other.
		waitSubscribers(t, mon, room, 2)
		waitNodes(t, 2, a, b)

		_ = a.io.To("r").Emit("after", round)
		_ = a.io.Emit("fence")
		if got := cb.until("fence"); !reflect.DeepEqual(got, [][]any{{"after", float64(round)}}) {
			t.Fatalf("round %d: remote member got %v after the outage, want only [after %d]", round, got, round)
		}
		ca.until("fence")
		if late != nil {
			waitSubscribers(t, mon, prefix+":room:/:late", 1)
			_ = a.io.To("late").Emit("late-msg")
			// (It also got the fences broadcast to everyone.)
			late.until("late-msg")
		}
		runtime.GC()
		goroutines = append(goroutines, runtime.NumGoroutine())
	}
	t.Logf("goroutines after each outage: %v", goroutines)
	if goroutines[2] > goroutines[0]+4 {
		t.Errorf("goroutines grew across outages: %v", goroutines)
	}
}

func TestAdapterOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts AdapterOptions
		ok   bool
	}{
		{"defaults", AdapterOptions{InstanceID: "a"}, true},
		{"no instance id", AdapterOptions{}, false},
		{"timeout not above interval", AdapterOptions{InstanceID: "a", HeartbeatInterval: 5 * time.Second, HeartbeatTimeout: 5 * time.Second}, false},
		{"negative interval", AdapterOptions{InstanceID: "a", HeartbeatInterval: -1}, false},
		{"negative request timeout", AdapterOptions{InstanceID: "a", RequestTimeout: -1}, false},
		{"negative queue", AdapterOptions{InstanceID: "a", PublishQueueSize: -1}, false},
		{"negative stream length", AdapterOptions{InstanceID: "a", RecoveryStreamLength: -1}, false},
		{"negative max packets", AdapterOptions{InstanceID: "a", RecoveryMaxPackets: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adapterDefaults(tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (got.Prefix != DefaultAdapterPrefix || got.InstanceID != "a" || got.HeartbeatTimeout != DefaultHeartbeatTimeout) {
				t.Errorf("defaults not filled: %+v", got)
			}
		})
	}
	if _, err := NewAdapterBuilder(nil, AdapterOptions{InstanceID: "a"}); err == nil {
		t.Error("NewAdapterBuilder(nil) did not fail")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	if _, err := NewAdapterBuilder(rdb, AdapterOptions{}); err == nil || !strings.Contains(err.Error(), "InstanceID") {
		t.Errorf("NewAdapterBuilder without InstanceID: err = %v, want one naming InstanceID", err)
	}
}

func TestAdapterPlainValue(t *testing.T) {
	type tagged struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
		Skip  string `json:"-"`
	}
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{"string", "x", "x"},
		{"bytes", []byte{1}, []byte{1}},
		{"struct", tagged{"a", 2, "s"}, map[string]any{"name": "a", "count": int64(2)}},
		{"nested", []any{map[string]any{"t": tagged{Name: "b"}}}, []any{map[string]any{"t": map[string]any{"name": "b", "count": int64(0)}}}},
		{"typed slice", []string{"a"}, []any{"a"}},
		{"float", 1.5, 1.5},
		{"reader", bytes.NewReader([]byte{7, 8}), []byte{7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wirePlain(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("wirePlain = %#v, want %#v", got, tc.want)
			}
			// And it survives the wire.
			b, err := encodeWire(&wireMessage{Data: []any{got}})
			if err != nil {
				t.Fatal(err)
			}
			var m wireMessage
			if err := decodeWire(b, &m); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Data[0], tc.want) {
				t.Errorf("after the wire: %#v, want %#v", m.Data[0], tc.want)
			}
		})
	}
	if _, err := wirePlain(make(chan int)); !errors.Is(err, errUnsupportedData) {
		t.Errorf("wirePlain(chan) err = %v, want errUnsupportedData", err)
	}
}

// A Redis that stops answering without closing the connection (as after a
// network partition): the adapter notices the silent subscription, turns
// not ready, replaces the connection and resumes.
func TestAdapterSilentRedis(t *testing.T) {
	r := testkit.StartRedisServer(t)
	const prefix = "t-silent"
	a := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	b := newAdapterTestNode(t, r.Client(), adapterNodeConfig{opts: adapterTestOptions(t, prefix)})
	waitNodes(t, 2, a, b)
	cb := dialAdapterTestClient(t, b.url, map[string]any{"userId": "u1", "rooms": []string{"r"}})
	cb.waitReady()
	mon := r.Client()
	waitSubscribers(t, mon, prefix+":room:/:r", 1)

	if err := mon.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	adapterWaitFor(t, "Ready to turn false", func() bool { return !a.builder.Ready() })
	adapterWaitFor(t, "Ready to turn true", func() bool { return a.builder.Ready() && b.builder.Ready() })
	waitSubscribers(t, mon, prefix+":room:/:r", 1)
	waitNodes(t, 2, a, b)
	_ = a.io.To("r").Emit("after")
	_ = a.io.Emit("fence")
	if names := adapterEventNames(cb.until("fence")); !slices.Equal(names, []string{"after"}) {
		t.Errorf("remote member got %v after Redis answered again, want [after]", names)
	}
}

// BenchmarkAdapterBroadcast measures a room broadcast from one instance to a
// member on another, with connection state recovery off and on.
func BenchmarkAdapterBroadcast(b *testing.B) {
	for _, bc := range []struct {
		name       string
		recoveryMs int64
	}{{"recovery-off", 0}, {"recovery-on", 60_000}} {
		b.Run(bc.name, func(b *testing.B) {
			r := testkit.StartRedisServer(b)
			opts := adapterTestOptions(b, "bench")
			opts.Logger = slog.New(slog.DiscardHandler)
			opts.PublishQueueSize = 1 << 16
			cfg := adapterNodeConfig{opts: opts, recoveryMs: bc.recoveryMs}
			x := newAdapterTestNode(b, r.Client(), cfg)
			y := newAdapterTestNode(b, r.Client(), cfg)
			waitNodes(b, 2, x, y)
			cy := dialAdapterTestClient(b, y.url, map[string]any{"rooms": []string{"r"}})
			cy.waitReady()
			waitSubscribers(b, r.Client(), "bench:room:/:r", 1)
			for i := 0; b.Loop(); i++ {
				_ = x.io.To("r").Emit("m", i)
				cy.next()
			}
		})
	}
}
