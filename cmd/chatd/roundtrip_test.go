package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chatd/chatd/config"
)

// redisScriptCalls is how many scripts (EVAL and EVALSHA) the Redis server
// has run.
func redisScriptCalls(t *testing.T, info string) int64 {
	t.Helper()
	var n int64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_eval:", "cmdstat_evalsha:"} {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd+"calls=")
			if !ok {
				continue
			}
			calls, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			if err != nil {
				t.Fatalf("commandstats line %q: %v", line, err)
			}
			n += calls
		}
	}
	return n
}

// On one Redis server, a socket's message is stored, recorded for recovery
// and published to the other instances in one script: one round trip. The
// member on the other instance and the one on the sender's instance get
// it with the id the sender's acknowledgement has; a retry with the same
// clientMsgId and a non-member's send deliver nothing; history has every
// message under its id.
func TestMessageOneRoundTrip(t *testing.T) {
	rs := startRedis(t)
	mon := rs.Client()
	ctx := context.Background()
	cluster := func(id string) config.Config {
		cfg := testConfig(id)
		cfg.Redis.URL = rs.URL()
		cfg.Redis.Prefix = "roundtrip"
		return cfg
	}
	_, baseA := startMain(t, cluster("node-a"))
	_, baseB := startMain(t, cluster("node-b"))
	for _, base := range []string{baseA, baseB} {
		waitValue(t, base, 2, "chatd_cluster_nodes")
	}
	alice := dial(t, baseA, "alice")
	carol := dial(t, baseA, "carol")
	bob := dial(t, baseB, "bob")
	for _, c := range []*client{alice, carol, bob} {
		c.MustOK("join", map[string]any{"room": "lobby"})
	}
	// Joins reach the other instance's subscriptions before they answer,
	// so from here on each message reaches both.
	type message struct {
		ID          string `json:"id"`
		Text        string `json:"text"`
		ClientMsgID string `json:"clientMsgId"`
	}
	next := func(c *client) message {
		t.Helper()
		args := c.Event("message")
		var m message
		if len(args) == 0 || json.Unmarshal(args[0], &m) != nil {
			t.Fatalf("malformed message event %s", args)
		}
		return m
	}
	// The first message after the script was loaded: the instances send
	// it by its hash, and its text once when Redis lacks it.
	alice.MustOK("message", map[string]any{"room": "lobby", "text": "warm-up"})
	for _, c := range []*client{bob, carol} {
		if m := next(c); m.Text != "warm-up" {
			t.Fatalf("got %+v, want the warm-up message", m)
		}
	}
	const n = 20
	before, err := mon.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		req := map[string]any{"room": "lobby", "text": fmt.Sprintf("m%d", i)}
		if i%2 == 1 {
			req["clientMsgId"] = fmt.Sprintf("c%d", i)
		}
		ack := alice.MustOK("message", req)
		var a struct{ Message message }
		if err := json.Unmarshal(ack.Raw, &a); err != nil || a.Message.ID == "" {
			t.Fatalf("acknowledgement %s has no message id", ack.Raw)
		}
		ids = append(ids, a.Message.ID)
	}
	after, err := mon.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := redisScriptCalls(t, after) - redisScriptCalls(t, before); got != n {
		t.Errorf("%d messages ran %d scripts, want one each", n, got)
	}
	for i := range n {
		for name, c := range map[string]*client{"bob, on the other instance": bob, "carol, on the sender's": carol} {
			if m := next(c); m.ID != ids[i] || m.Text != fmt.Sprintf("m%d", i) {
				t.Fatalf("%s got message %+v, want id %s and text m%d", name, m, ids[i], i)
			}
		}
	}

	// A retry is answered with the original and delivered to nobody; a
	// non-member's send is refused.
	retry := alice.MustOK("message", map[string]any{"room": "lobby", "text": "m1", "clientMsgId": "c1"})
	if !strings.Contains(string(retry.Raw), ids[1]) {
		t.Errorf("the retry was answered %s, want the original %s", retry.Raw, ids[1])
	}
	dave := dial(t, baseA, "dave")
	dave.MustFail("message", map[string]any{"room": "lobby", "text": "not a member"}, "forbidden")
	alice.MustOK("message", map[string]any{"room": "lobby", "text": "fence"})
	for name, c := range map[string]*client{"bob": bob, "carol": carol} {
		if m := next(c); m.Text != "fence" {
			t.Errorf("after a retry and a refused send %s got %+v, want the fence", name, m)
		}
	}

	// A server API post is one script too, and reaches every member,
	// the sender's instance's included.
	before, err = mon.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, baseA+"/api/v1/rooms/lobby/messages", strings.NewReader(`{"text":"from the backend"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer run-test-api-token-0123456789abcdef")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var posted struct{ Message message }
	err = json.NewDecoder(res.Body).Decode(&posted)
	_ = res.Body.Close()
	if err != nil || res.StatusCode != http.StatusCreated || posted.Message.ID == "" {
		t.Fatalf("POST a message: %d, %+v, %v", res.StatusCode, posted, err)
	}
	after, err = mon.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := redisScriptCalls(t, after) - redisScriptCalls(t, before); got != 1 {
		t.Errorf("a server API post ran %d scripts, want 1", got)
	}
	for name, c := range map[string]*client{"alice": alice, "bob": bob, "carol": carol} {
		if m := next(c); m.ID != posted.Message.ID || m.Text != "from the backend" {
			t.Errorf("%s got %+v, want the post %s", name, m, posted.Message.ID)
		}
	}

	// history has them, under the same ids.
	page := bob.MustOK("history", map[string]any{"room": "lobby", "limit": 100})
	for _, id := range ids {
		if !strings.Contains(string(page.Raw), `"id":"`+id+`"`) {
			t.Fatalf("history lacks %s: %s", id, page.Raw)
		}
	}
}
