package server

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/chatd/chatd/rooms"
)

func mustArgs(t *testing.T, s string) []any {
	t.Helper()
	var v []any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test input %s: %v", s, err)
	}
	return v
}

func TestHistoryRequest(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    rooms.Query
		wantErr string
	}{
		{"defaults", `[{"room":"general"}]`, rooms.Query{Limit: 50}, ""},
		{"after", `[{"room":"general","after":"1-0","limit":10}]`, rooms.Query{After: "1-0", Limit: 10}, ""},
		{"before", `[{"room":"general","before":"5-2"}]`, rooms.Query{Before: "5-2", Limit: 50}, ""},
		{"both cursors", `[{"room":"general","before":"5-2","after":"1-0"}]`, rooms.Query{}, "either before or after"},
		{"not an id", `[{"room":"general","after":"yesterday"}]`, rooms.Query{}, "after must be a message id"},
		{"empty id", `[{"room":"general","before":""}]`, rooms.Query{}, "before must be a message id"},
		{"null cursor", `[{"room":"general","after":null}]`, rooms.Query{Limit: 50}, ""},
		{"limit zero", `[{"room":"general","limit":0}]`, rooms.Query{}, "limit must be 1 to 100"},
		{"limit too big", `[{"room":"general","limit":101}]`, rooms.Query{}, "limit must be 1 to 100"},
		{"limit fraction", `[{"room":"general","limit":1.5}]`, rooms.Query{}, "whole number"},
		{"limit string", `[{"room":"general","limit":"10"}]`, rooms.Query{}, "whole number"},
		{"room missing", `[{}]`, rooms.Query{}, "room is required"},
		{"room not a string", `[{"room":["a"]}]`, rooms.Query{}, "room must be a string"},
		{"no object", `["general"]`, rooms.Query{}, "must be an object"},
		{"no argument", `[]`, rooms.Query{}, "needs one object"},
		{"reserved room", `[{"room":"user:bob"}]`, rooms.Query{}, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, q, err := historyRequest(mustArgs(t, tt.args))
			if tt.wantErr != "" {
				var e *rooms.Error
				if !errors.As(err, &e) || e.Code != rooms.CodeBadRequest || !strings.Contains(e.Message, tt.wantErr) {
					t.Fatalf("err = %v, want bad_request containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || q != tt.want {
				t.Fatalf("got %+v, %v; want %+v", q, err, tt.want)
			}
		})
	}
}

func TestMessageRequest(t *testing.T) {
	tests := []struct {
		name    string
		args    []any
		wantErr string
	}{
		{"ok", mustArgs(t, `[{"room":"a","text":"hi","clientMsgId":"c1"}]`), ""},
		{"room array", mustArgs(t, `[{"room":["a"],"text":"hi"}]`), "room must be a string"},
		{"text number", mustArgs(t, `[{"room":"a","text":5}]`), "text must be a string"},
		{"binary text", []any{map[string]any{"room": "a", "text": []byte{1, 2, 3}}}, "text must be a string"},
		{"empty clientMsgId", mustArgs(t, `[{"room":"a","text":"hi","clientMsgId":""}]`), "clientMsgId must be 1 to 64"},
		{"null", mustArgs(t, `[null]`), "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := messageRequest(tt.args)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestTypingRequest(t *testing.T) {
	if _, _, err := typingRequest(mustArgs(t, `[{"room":"a","typing":"yes"}]`)); err == nil {
		t.Fatal("typing as a string was accepted")
	}
	room, typing, err := typingRequest(mustArgs(t, `[{"room":"a","typing":true}]`))
	if err != nil || room != "a" || !typing {
		t.Fatalf("got %q %v %v", room, typing, err)
	}
}

// FuzzDecode feeds arbitrary JSON event arguments to every request decoder:
// none may panic, and every refusal must be a bad_request the client can
// read.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`[]`, `[null]`, `[{"room":"general"}]`, `[{"room":["a"]}]`, `[123]`,
		`[{"room":"a","text":"hi","clientMsgId":"x"}]`, `[{"room":"a","limit":1e300}]`,
		`[{"room":"a","after":"1-0","before":"2-0"}]`, `[{"room":"a","typing":true}]`,
		`[{"room":"a","after":"18446744073709551616-0"}]`, `["join",{"room":{}}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var args []any
		if json.Unmarshal(data, &args) != nil {
			return
		}
		check := func(err error) {
			if err == nil {
				return
			}
			var e *rooms.Error
			if !errors.As(err, &e) || (e.Code != rooms.CodeBadRequest && e.Code != rooms.CodeTooLarge) || e.Message == "" {
				t.Fatalf("decoder error %#v is not a client-readable bad_request", err)
			}
		}
		_, err := roomRequest(args)
		check(err)
		_, err = messageRequest(args)
		check(err)
		_, _, err = typingRequest(args)
		check(err)
		_, _, err = historyRequest(args)
		check(err)
		check(roomsRequest(args))
	})
}

func TestRoomsRequest(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		wantErr string
	}{
		{"empty object", `[{}]`, ""},
		{"no argument", `[]`, "needs one object"},
		{"null", `[null]`, "must be an object"},
		{"string", `["x"]`, "must be an object"},
		{"number", `[5]`, "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := roomsRequest(mustArgs(t, tt.args))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var e *rooms.Error
			if !errors.As(err, &e) || e.Code != rooms.CodeBadRequest || !strings.Contains(e.Message, tt.wantErr) {
				t.Fatalf("err = %v, want bad_request containing %q", err, tt.wantErr)
			}
		})
	}
}
