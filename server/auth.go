package server

import (
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/rooms"
)

// Auth modes.
const (
	AuthDev = "dev"
	AuthJWT = "jwt"
	// AuthHook leaves the user to the connect hook's answer.
	AuthHook = "hook"
)

// maxNameLength is the longest display name, in characters.
const maxNameLength = 64

// authenticator turns a socket's CONNECT auth object into a user.
type authenticator struct {
	mode      string
	secret    []byte           // HS256
	publicKey crypto.PublicKey // RS256 or ES256, may be nil
	parser    *jwt.Parser
	// joinParser checks join tokens (exp required); leeway is the clock
	// difference allowed on exp (see withClaimChecks).
	joinParser *jwt.Parser
	leeway     time.Duration
}

func newAuthenticator(mode string, secret []byte, publicKey crypto.PublicKey) (*authenticator, error) {
	a := &authenticator{mode: mode, secret: secret, publicKey: publicKey}
	switch mode {
	case AuthDev, AuthHook:
	case AuthJWT:
		if len(secret) == 0 && publicKey == nil {
			return nil, errors.New("jwt auth needs a secret or a public key")
		}
		var methods []string
		if len(secret) > 0 {
			methods = append(methods, "HS256")
		}
		if publicKey != nil {
			methods = append(methods, "RS256", "ES256")
		}
		a.parser = jwt.NewParser(jwt.WithValidMethods(methods), jwt.WithLeeway(0))
		a.joinParser = jwt.NewParser(jwt.WithValidMethods(methods), jwt.WithLeeway(0), jwt.WithExpirationRequired())
	default:
		return nil, fmt.Errorf("unknown auth mode %q (valid: dev, jwt, hook)", mode)
	}
	return a, nil
}

// authenticate returns the user that auth names, or an error whose sentence
// may be shown to the client.
func (a *authenticator) authenticate(auth map[string]any) (rooms.User, error) {
	if a.mode == AuthJWT {
		return a.fromToken(auth)
	}
	return a.fromDev(auth)
}

func (a *authenticator) fromDev(auth map[string]any) (rooms.User, error) {
	var u rooms.User
	if v, ok := auth["userId"]; ok && v != nil && v != "" {
		s, ok := v.(string)
		if !ok {
			return u, errors.New("userId must be a string")
		}
		if err := rooms.ValidateUserID(s); err != nil {
			return u, err
		}
		u.ID = s
	} else {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		u.ID = "guest-" + hex.EncodeToString(b)
	}
	name, err := displayName(auth["name"], u.ID)
	if err != nil {
		return u, err
	}
	u.Name = name
	return u, nil
}

// claims are the JWT claims chatd reads.
type claims struct {
	Name string `json:"name"`
	// AllowedRooms lists room patterns of granted rooms the user may join.
	AllowedRooms []string `json:"allowed_rooms"`
	// Room is the room of a join token.
	Room string `json:"room"`
	jwt.RegisteredClaims
}

func (a *authenticator) fromToken(auth map[string]any) (rooms.User, error) {
	u, _, err := a.fromTokenClaims(auth)
	return u, err
}

// fromTokenClaims is fromToken that also returns the token's claims.
func (a *authenticator) fromTokenClaims(auth map[string]any) (rooms.User, *claims, error) {
	raw, _ := auth["token"].(string)
	if raw == "" {
		return rooms.User{}, nil, errors.New("auth.token is required")
	}
	c, err := a.parse(raw, a.parser)
	if err != nil {
		return rooms.User{}, nil, err
	}
	u, err := a.userOf(c)
	return u, c, err
}

// userOf checks the user claims of a connection token.
func (a *authenticator) userOf(c *claims) (rooms.User, error) {
	if err := rooms.ValidateUserID(c.Subject); err != nil {
		return rooms.User{}, errors.New("the token's sub claim must be a user id")
	}
	if err := checkPatterns(c.AllowedRooms); err != nil {
		return rooms.User{}, err
	}
	name, err := displayName(c.Name, c.Subject)
	if err != nil {
		return rooms.User{}, err
	}
	return rooms.User{ID: c.Subject, Name: name}, nil
}

// tokenError turns a JWT library error into a sentence for the client; the
// library's own text stays in the debug log.
func tokenError(err error) error {
	var msg string
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		msg = "the token has expired; sign in again"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		msg = "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenMalformed):
		msg = "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		msg = "the token's signature does not verify"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		msg = "the token's algorithm is not accepted"
	default:
		msg = "the token is not valid"
	}
	return &authError{msg: msg, cause: err}
}

// authError is a refusal whose sentence may be shown and whose cause may not.
type authError struct {
	msg   string
	cause error
}

func (e *authError) Error() string { return e.msg + ": " + e.cause.Error() }

// displayName checks a name given by a client, defaulting to the user id.
func displayName(v any, fallback string) (string, error) {
	if v == nil || v == "" {
		if utf8.RuneCountInString(fallback) > maxNameLength {
			return string([]rune(fallback)[:maxNameLength]), nil
		}
		return fallback, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", errors.New("name must be a string")
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNameLength {
		return "", fmt.Errorf("name must be 1 to %d characters", maxNameLength)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", errors.New("name must not contain control characters")
		}
	}
	return s, nil
}
