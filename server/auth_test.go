package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func sign(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticateJWT(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAuthenticator(AuthJWT, testSecret, &ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).Unix()
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice"})
	tests := []struct {
		name     string
		token    any
		wantUser string
		wantName string
	}{
		{"hs256", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "name": "Alice", "exp": future}), "alice", "Alice"},
		{"name defaults to sub", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "bob"}), "bob", "bob"},
		{"es256", sign(t, jwt.SigningMethodES256, ec, jwt.MapClaims{"sub": "carol"}), "carol", "carol"},
		{"expired", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}), "", ""},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), jwt.MapClaims{"sub": "alice"}), "", ""},
		{"hs512 refused", sign(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "alice"}), "", ""},
		{"alg none refused", none, "", ""},
		{"no sub", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"name": "x"}), "", ""},
		{"missing token", nil, "", ""},
		{"token not a string", 42, "", ""},
		{"garbage", "a.b.c", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := a.authenticate(map[string]any{"token": tt.token})
			if tt.wantUser == "" {
				if err == nil {
					t.Fatalf("accepted as %+v", u)
				}
				return
			}
			if err != nil || u.ID != tt.wantUser || u.Name != tt.wantName {
				t.Fatalf("got %+v, %v; want %s/%s", u, err, tt.wantUser, tt.wantName)
			}
		})
	}
}

func TestAuthenticateDev(t *testing.T) {
	a, err := newAuthenticator(AuthDev, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.authenticate(map[string]any{"userId": "alice", "name": "Alice"})
	if err != nil || u.ID != "alice" || u.Name != "Alice" {
		t.Fatalf("got %+v %v", u, err)
	}
	g, err := a.authenticate(nil)
	if err != nil || !strings.HasPrefix(g.ID, "guest-") || g.Name != g.ID {
		t.Fatalf("guest: %+v %v", g, err)
	}
	for _, bad := range []map[string]any{
		{"userId": 5},
		{"userId": strings.Repeat("x", 200)},
		{"userId": "a\nb"},
		{"userId": "ok", "name": []any{"x"}},
		{"userId": "ok", "name": strings.Repeat("n", 65)},
	} {
		if u, err := a.authenticate(bad); err == nil {
			t.Errorf("%v accepted as %+v", bad, u)
		}
	}
}

// A refused token's sentence is chatd's own, never the JWT library's text.
func TestAuthMessageHidesLibraryText(t *testing.T) {
	a, err := newAuthenticator(AuthJWT, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token string
		want  string
	}{
		{sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Hour).Unix()}), "the token has expired; sign in again"},
		{sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 32)), jwt.MapClaims{"sub": "a"}), "the token's signature does not verify"},
		{"not-a-token", "the token is malformed"},
		// golang-jwt reports an algorithm outside the allowed list as a bad signature.
		{sign(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "a"}), "the token's signature does not verify"},
	}
	for _, tt := range tests {
		_, err := a.authenticate(map[string]any{"token": tt.token})
		if got := authMessage(err); got != tt.want {
			t.Errorf("authMessage = %q, want %q (cause: %v)", got, tt.want, err)
		}
	}
}
