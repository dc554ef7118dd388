package api

import (
	"net/http"
	"testing"
)

func TestSocketIDsAreNotRooms(t *testing.T) {
	_, ts := apiTestServer(t, Config{Token: apiToken})
	alice := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	bob := apiDial(t, ts, map[string]any{"userId": "bob"}, nil)
	bob.join("general")
	ack := bob.try("join", map[string]any{"room": alice.id})
	if errCode(ack) != "bad_request" {
		t.Fatalf("join of another socket's id = %v, want bad_request", ack)
	}
	r := apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(map[string]any{"event": "x", "data": 1, "sockets": []string{"general"}}))
	wantError(t, r, http.StatusBadRequest, "bad_request", "not a socket id")
	r = apiDo(t, ts, http.MethodPost, "/api/v1/emit", apiToken, apiJSON(map[string]any{"event": "to-alice", "data": 1, "sockets": []string{alice.id}}))
	if r.status != http.StatusAccepted {
		t.Fatalf("emit to alice's socket: %d %s", r.status, r.raw)
	}
	alice.next("to-alice")
	if r := apiDo(t, ts, http.MethodPost, "/@connections/"+alice.id, apiToken, `{"n":1}`); r.status != http.StatusOK {
		t.Fatalf("@connections post: %d %s", r.status, r.raw)
	}
	alice.next("push")
	if r := apiDo(t, ts, http.MethodPost, "/@connections/general", apiToken, `{"n":1}`); r.status != http.StatusGone {
		t.Fatalf("@connections post to a room name: %d %s, want 410", r.status, r.raw)
	}
	if bob.has("to-alice") || bob.has("push") {
		t.Fatal("bob received what was sent to alice's socket")
	}
}

// errCode is the error.code of a refused acknowledgement, "" for an ok one.
func errCode(ack map[string]any) string {
	e, _ := ack["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}
