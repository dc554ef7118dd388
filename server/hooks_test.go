package server

import (
	"testing"
	"time"

	"github.com/chatd/chatd/rooms"
)

func TestGatewayStatusCodes(t *testing.T) {
	for status, want := range map[int]rooms.Code{
		400: rooms.CodeBadRequest, 401: rooms.CodeUnauthorized, 403: rooms.CodeForbidden, 404: rooms.CodeNotFound,
		413: rooms.CodeTooLarge, 418: rooms.CodeBadRequest, 429: rooms.CodeRateLimited, 500: rooms.CodeUnavailable,
		502: rooms.CodeUnavailable, 302: rooms.CodeBadRequest,
	} {
		if got := statusCode(status); got != want {
			t.Errorf("statusCode(%d) = %s, want %s", status, got, want)
		}
	}
}

func TestDisconnectStatus(t *testing.T) {
	for reason, want := range map[string]int{
		"client namespace disconnect": 1000,
		"server namespace disconnect": 1000,
		"transport close":             1001,
		"server shutting down":        1001,
		"parse error":                 1002,
		"ping timeout":                1006,
		"transport error":             1006,
	} {
		if got := disconnectStatus(reason); got != want {
			t.Errorf("disconnectStatus(%q) = %d, want %d", reason, got, want)
		}
	}
}

func TestRPCMethodNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"echo": true, "orders.get": true, "a/b:c-d_e": true, "": false, "has space": false, "x\u00e9": false,
		string(make([]byte, 65)): false,
	} {
		if rpcMethod.MatchString(name) != ok {
			t.Errorf("rpcMethod(%q) = %v, want %v", name, !ok, ok)
		}
	}
}

func TestHookModeNeedsAConnectHook(t *testing.T) {
	chat, err := rooms.NewChat(rooms.Limits{}, rooms.Stores{
		Membership:  rooms.NewMemoryMembership(),
		Presence:    rooms.NewMemoryPresence(),
		History:     rooms.NewMemoryHistory(10),
		Idempotency: rooms.NewMemoryIdempotency(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{AuthMode: AuthHook}, Deps{Chat: chat}); err == nil {
		t.Fatal("New in hook mode without a connect hook succeeded")
	}
}
