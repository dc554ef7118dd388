package api

import (
	"testing"
)

func TestSyncRequest(t *testing.T) {
	_, ts := apiTestServer(t, Config{})
	alice := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	alice.join("a")
	alice.join("b")
	first := alice.request("message", map[string]any{"room": "a", "text": "one"})
	firstID := first["message"].(map[string]any)["id"].(string)
	alice.request("message", map[string]any{"room": "a", "text": "two"})
	alice.request("message", map[string]any{"room": "b", "text": "three"})

	ack := alice.try("sync", map[string]any{"rooms": map[string]any{
		"a": firstID, "b": nil, "c": nil, "bad": 12,
	}})
	if ack["ok"] != true {
		t.Fatalf("sync: %v", ack)
	}
	rs, _ := ack["rooms"].(map[string]any)
	texts := func(room string) []any {
		r, _ := rs[room].(map[string]any)
		ms, ok := r["messages"].([]any)
		if !ok {
			t.Fatalf("%s: no messages in %v", room, r)
		}
		var out []any
		for _, m := range ms {
			out = append(out, m.(map[string]any)["text"])
		}
		return out
	}
	if got := texts("a"); len(got) != 1 || got[0] != "two" {
		t.Errorf("a: %v, want [two]", got)
	}
	if got := texts("b"); len(got) != 1 || got[0] != "three" {
		t.Errorf("b: %v, want [three]", got)
	}
	codeIn := func(room string) any {
		r, _ := rs[room].(map[string]any)
		e, _ := r["error"].(map[string]any)
		return e["code"]
	}
	if got := codeIn("c"); got != "forbidden" {
		t.Errorf("c (not a member): code %v, want forbidden", got)
	}
	if got := codeIn("bad"); got != "bad_request" {
		t.Errorf("bad (a number as id): code %v, want bad_request", got)
	}

	for _, bad := range []any{nil, map[string]any{}, map[string]any{"rooms": []any{"a"}}, map[string]any{"rooms": map[string]any{}, "limit": 0}} {
		ack := alice.try("sync", bad)
		e, _ := ack["error"].(map[string]any)
		if ack["ok"] != false || e["code"] != "bad_request" {
			t.Errorf("sync %v: %v, want bad_request", bad, ack)
		}
	}
}
