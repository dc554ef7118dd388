package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatd/chatd/internal/httplimit"
)

func newTestAdmin(t *testing.T, password string) *admin {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return &admin{
		s:        &Server{log: slog.New(slog.DiscardHandler)},
		cfg:      AdminConfig{Username: "ops", PasswordHash: h, SessionTTL: time.Hour},
		sessions: NewMemoryAdminSessions(),
		failures: httplimit.NewFailures(0, 0),
		slots:    make(chan struct{}, adminBcryptSlots),
	}
}

// A password login issues a 256-bit session id that logs in again, on its
// own; anything else, chat credentials included, is invalid.
func TestAdminLogin(t *testing.T) {
	a := newTestAdmin(t, "s3cret-password")
	ctx := context.Background()
	res, id := a.login(ctx, map[string]any{"username": "ops", "password": "s3cret-password"})
	if res != loginPassword || !validSessionID(id) || len(id) != 43 {
		t.Fatalf("login = %q, %q; want a password login with a 43-character id", res, id)
	}
	if res2, id2 := a.login(ctx, map[string]any{"username": "ops", "password": "s3cret-password"}); res2 != loginPassword || id2 == id {
		t.Fatalf("a second login = %q, %q; want a new session id", res2, id2)
	}
	if res, again := a.login(ctx, map[string]any{"sessionId": id}); res != loginSession || again != "" {
		t.Fatalf("session login = %q, %q", res, again)
	}
	tests := []struct {
		name string
		auth map[string]any
	}{
		{"no auth", nil},
		{"wrong password", map[string]any{"username": "ops", "password": "guess"}},
		{"wrong user", map[string]any{"username": "root", "password": "s3cret-password"}},
		{"empty password", map[string]any{"username": "ops", "password": ""}},
		{"password not a string", map[string]any{"username": "ops", "password": 12345}},
		{"unknown session", map[string]any{"sessionId": strings.Repeat("A", 43)}},
		{"malformed session", map[string]any{"sessionId": "../../etc"}},
		{"session not a string", map[string]any{"sessionId": 42}},
		{"null session", map[string]any{"sessionId": nil}},
		{"chat dev auth", map[string]any{"userId": "ops", "name": "Ops"}},
		{"chat token", map[string]any{"token": "eyJhbGciOiJIUzI1NiJ9.e30.x"}},
		{"type field", map[string]any{"type": "basic", "username": "ops"}},
	}
	for _, tt := range tests {
		if res, id := a.login(ctx, tt.auth); res != loginInvalid || id != "" {
			t.Errorf("%s: login = %q, %q; want invalid", tt.name, res, id)
		}
	}
	// A session of another password hash (the password changed) is over.
	b := newTestAdmin(t, "another-password")
	b.sessions = a.sessions
	if res, _ := b.login(ctx, map[string]any{"sessionId": id}); res != loginInvalid {
		t.Fatalf("a session from before the password changed: %q, want invalid", res)
	}
}

func TestMemoryAdminSessionsExpire(t *testing.T) {
	m := NewMemoryAdminSessions()
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	ctx := context.Background()
	_ = m.Save(ctx, "k", time.Minute)
	if ok, _ := m.Exists(ctx, "k"); !ok {
		t.Fatal("a fresh session does not exist")
	}
	now = now.Add(time.Minute)
	if ok, _ := m.Exists(ctx, "k"); ok {
		t.Fatal("a session outlived its TTL")
	}
	for i := range maxMemoryAdminSessions + 5 {
		_ = m.Save(ctx, strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), time.Hour)
	}
	if n := len(m.keys); n > maxMemoryAdminSessions {
		t.Fatalf("%d sessions kept, want at most %d", n, maxMemoryAdminSessions)
	}
}

func TestParseAdminRequest(t *testing.T) {
	sid := "AAAAAAAAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name    string
		event   string
		args    []any
		refused string
		want    adminAction
	}{
		{"join", "join", []any{"/", "general", sid}, "", adminAction{name: "join", room: "general", socketID: sid}},
		{"leave", "leave", []any{"/", "general", sid}, "", adminAction{name: "leave", room: "general", socketID: sid}},
		{"disconnect", "_disconnect", []any{"/", true, sid}, "", adminAction{name: "_disconnect", socketID: sid}},
		{"emit is not offered", "emit", []any{"/", sid, "message", "hi"}, adminUnsupported, adminAction{}},
		{"join the whole namespace", "join", []any{"/", "general"}, adminMalformed, adminAction{}},
		{"leave a whole room", "leave", []any{"/", "general", nil}, adminUnknownSocket, adminAction{}},
		{"disconnect a room", "_disconnect", []any{"/", false, "general"}, adminUnknownSocket, adminAction{}},
		{"disconnect everyone", "_disconnect", []any{"/", false}, adminMalformed, adminAction{}},
		{"admin namespace", "_disconnect", []any{"/admin", false, sid}, adminUnknownNamespace, adminAction{}},
		{"namespace not a string", "join", []any{1, "general", sid}, adminMalformed, adminAction{}},
		{"room not a string", "join", []any{"/", []any{"a"}, sid}, adminMalformed, adminAction{}},
		{"reserved room", "join", []any{"/", "user:bob", sid}, "bad_request", adminAction{}},
		{"socket-id-shaped room", "join", []any{"/", sid, sid}, "bad_request", adminAction{}},
		{"close not a bool", "_disconnect", []any{"/", "yes", sid}, adminMalformed, adminAction{}},
		{"too many arguments", "join", []any{"/", "general", sid, "extra"}, adminMalformed, adminAction{}},
	}
	for _, tt := range tests {
		got, refused := parseAdminRequest(tt.event, tt.args)
		if refused != tt.refused || got != tt.want {
			t.Errorf("%s: parseAdminRequest = %+v, %q; want %+v, %q", tt.name, got, refused, tt.want, tt.refused)
		}
	}
}

// The chat namespace takes an admin login or session for no one: in jwt
// mode it is refused as a connection without a token.
func TestChatRefusesAdminCredentials(t *testing.T) {
	a, err := newAuthenticator(AuthJWT, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []map[string]any{
		{"sessionId": strings.Repeat("A", 43)},
		{"username": "ops", "password": "s3cret-password"},
	} {
		if u, _, err := a.identify(auth); err == nil {
			t.Errorf("chat auth %v accepted as %+v", auth, u)
		}
	}
}
