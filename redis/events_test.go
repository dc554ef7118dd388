package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/internal/testkit"
)

// liveSet is the Live function of the event queue tests: the instances the
// test says are running.
type liveSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (l *liveSet) set(ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = map[string]bool{}
	for _, id := range ids {
		l.ids[id] = true
	}
}

func (l *liveSet) live(context.Context) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.ids {
		out = append(out, id)
	}
	return out, nil
}

func newEventQueue(t *testing.T, client *goredis.Client, id string, max int64, live *liveSet, reg *prometheus.Registry) *RedisEventQueue {
	t.Helper()
	m := events.NewMetrics(nil)
	if reg != nil {
		m = events.NewMetrics(reg)
	}
	q, err := NewRedisEventQueue(client, RedisEventQueueOptions{
		Prefix: "evtest", InstanceID: id, Max: max, Live: live.live,
		Metrics: m, Block: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	q.Start(t.Context())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = q.Close(ctx)
	})
	return q
}

func testEvents(n int, from int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = events.New(events.MessageCreated, time.Now(), json.RawMessage(fmt.Sprintf(`{"i":%d}`, from+i)))
	}
	return out
}

func waitLen(t *testing.T, client *goredis.Client, key string, n int64) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, func() bool { return client.XLen(t.Context(), key).Val() == n },
		"the stream to hold %d entries", n)
}

func dropped(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "chatd_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRedisEventQueueHandsEachEventToOneInstance: two instances read one
// stream; each event goes to one of them, and the events an instance held
// when it stopped are taken over by the other once it is no longer alive.
func TestRedisEventQueueHandsEachEventToOneInstance(t *testing.T) {
	client := storeRedisServer(t)
	live := &liveSet{}
	live.set("a", "b")
	a := newEventQueue(t, client, "a", 100, live, nil)
	b := newEventQueue(t, client, "b", 100, live, nil)
	ctx := t.Context()
	sent := testEvents(10, 0)
	a.Add(sent)
	waitLen(t, client, a.Key(), 10)

	heldByA, err := a.Next(ctx, 4, 0)
	if err != nil || len(heldByA) != 4 {
		t.Fatalf("a.Next = %d events, %v; want 4", len(heldByA), err)
	}
	got := map[string]int{}
	byB := map[string]bool{}
	for _, e := range heldByA {
		got[e.ID]++
	}
	// b reads the rest; a crashes holding its four, and b takes them over
	// once a is no longer alive.
	live.set("b")
	testkit.Eventually(t, 10*time.Second, func() bool {
		evs, err := b.Next(ctx, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			got[e.ID]++
			byB[e.ID] = true
		}
		if err := b.Done(ctx, evs); err != nil {
			t.Fatal(err)
		}
		return len(byB) == 10
	}, "b to be handed every event")
	for _, e := range sent {
		// a's four twice (a never said Done), the others once.
		want := 1
		for _, h := range heldByA {
			if h.ID == e.ID {
				want = 2
			}
		}
		if got[e.ID] != want {
			t.Errorf("event %s handed out %d times, want %d", e.ID, got[e.ID], want)
		}
	}
	waitLen(t, client, a.Key(), 0)
}

// TestRedisEventQueueRestartSendsOwnPendingFirst: an instance restarted
// under the same id first sends what it held before.
func TestRedisEventQueueRestartSendsOwnPendingFirst(t *testing.T) {
	client := storeRedisServer(t)
	live := &liveSet{}
	live.set("a")
	a := newEventQueue(t, client, "a", 100, live, nil)
	ctx := t.Context()
	a.Add(testEvents(5, 0))
	waitLen(t, client, a.Key(), 5)
	held, err := a.Next(ctx, 2, 0)
	if err != nil || len(held) != 2 {
		t.Fatalf("Next = %d, %v", len(held), err)
	}
	again := newEventQueue(t, client, "a", 100, live, nil)
	first, err := again.Next(ctx, 10, 0)
	if err != nil || len(first) != 2 || first[0].ID != held[0].ID || first[1].ID != held[1].ID {
		t.Fatalf("after a restart Next = %v, %v; want the two held before", first, err)
	}
	rest, err := again.Next(ctx, 10, 0)
	if err != nil || len(rest) != 3 {
		t.Fatalf("then Next = %d events, %v; want the other 3", len(rest), err)
	}
}

// TestRedisEventQueueBound: past Max the oldest events not handed to a
// sender are deleted and counted; those being sent stay.
func TestRedisEventQueueBound(t *testing.T) {
	client := storeRedisServer(t)
	live := &liveSet{}
	live.set("a")
	reg := prometheus.NewRegistry()
	q := newEventQueue(t, client, "a", 5, live, reg)
	ctx := t.Context()
	first := testEvents(3, 0)
	q.Add(first)
	waitLen(t, client, q.Key(), 3)
	held, err := q.Next(ctx, 2, 0) // events 0 and 1 are being sent
	if err != nil || len(held) != 2 {
		t.Fatalf("Next = %d, %v", len(held), err)
	}
	q.Add(testEvents(5, 3)) // 3..7: three too many, so 2, 3 and 4 go
	testkit.Eventually(t, 5*time.Second, func() bool { return dropped(t, reg, events.DropQueueFull) == 3 },
		"three events dropped")
	waitLen(t, client, q.Key(), 5)
	rest, err := q.Next(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var is []int
	for _, e := range rest {
		var d struct{ I int }
		_ = json.Unmarshal(e.Data, &d)
		is = append(is, d.I)
	}
	if fmt.Sprint(is) != "[5 6 7]" {
		t.Fatalf("unsent events left %v, want [5 6 7]", is)
	}
	if err := q.Done(ctx, append(held, rest...)); err != nil {
		t.Fatal(err)
	}
	waitLen(t, client, q.Key(), 0)
}
