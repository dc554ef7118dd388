package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/rooms"
)

// ClaimChecks are the checks of the registered claims of every token (the
// connection token, a refresh and a join token).
type ClaimChecks struct {
	// RequireExp refuses connection tokens without exp; join tokens always
	// need one.
	RequireExp bool
	// Audience lists the accepted aud values; empty does not check aud.
	Audience []string
	// Issuer is the required iss; empty does not check iss.
	Issuer string
	// Leeway is the clock difference allowed on exp, nbf and iat.
	Leeway time.Duration
}

// maxJoinTokenLifetime is the longest a join token may be valid for, from
// its iat (or from now when it has none): join tokens are meant to be
// short-lived.
const maxJoinTokenLifetime = 24 * time.Hour

// withClaimChecks makes the authenticator check the registered claims as
// checks says, for connection tokens and join tokens.
func (a *authenticator) withClaimChecks(checks ClaimChecks) {
	if a.mode != AuthJWT {
		return
	}
	var methods []string
	if len(a.secret) > 0 {
		methods = append(methods, "HS256")
	}
	if a.publicKey != nil {
		methods = append(methods, "RS256", "ES256")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(checks.Leeway)}
	if len(checks.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(checks.Audience...))
	}
	if checks.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(checks.Issuer))
	}
	a.joinParser = jwt.NewParser(append(opts, jwt.WithExpirationRequired())...)
	if checks.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	a.parser = jwt.NewParser(opts...)
	a.leeway = checks.Leeway
}

// parse verifies a token with parser and the authenticator's keys.
func (a *authenticator) parse(raw string, parser *jwt.Parser) (*claims, error) {
	var c claims
	_, err := parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "HS256":
			return a.secret, nil
		case "RS256", "ES256":
			return a.publicKey, nil
		}
		return nil, fmt.Errorf("algorithm %s is not accepted", t.Method.Alg())
	})
	if err != nil {
		return nil, tokenError(err)
	}
	return &c, nil
}

// checkPatterns checks the room patterns of an allowed_rooms claim.
func checkPatterns(patterns []string) error {
	for _, p := range patterns {
		if rooms.ValidatePattern(p) != nil {
			return errors.New("the token's allowed_rooms claim must be a list of room patterns such as \"team-*\"")
		}
	}
	return nil
}

// checkJoinToken verifies a join token: signed like connection tokens,
// with sub the user, room the room and an exp. It returns the token's iat
// (zero without one).
func (a *authenticator) checkJoinToken(raw, userID, room string) (time.Time, error) {
	c, err := a.joinTokenClaims(raw, userID, room)
	if err != nil || c.IssuedAt == nil {
		return time.Time{}, err
	}
	return c.IssuedAt.Time, nil
}

func (a *authenticator) joinTokenClaims(raw, userID, room string) (*claims, error) {
	if a.mode != AuthJWT {
		return nil, rooms.Errorf(rooms.CodeForbidden, "join tokens are accepted in jwt mode only; room %q is open to granted users only", room)
	}
	c, err := a.parse(raw, a.joinParser)
	if err != nil {
		var ae *authError
		msg := "the join token is not valid"
		if errors.As(err, &ae) {
			msg = "join token: " + ae.msg
		}
		return nil, &rooms.Error{Code: rooms.CodeForbidden, Message: msg, Err: err}
	}
	if c.Subject != userID {
		return nil, rooms.Errorf(rooms.CodeForbidden, "the join token is for another user")
	}
	if c.Room != room {
		return nil, rooms.Errorf(rooms.CodeForbidden, "the join token is for another room")
	}
	from := time.Now()
	if c.IssuedAt != nil {
		from = c.IssuedAt.Time
	}
	if c.ExpiresAt.Sub(from) > maxJoinTokenLifetime {
		return nil, rooms.Errorf(rooms.CodeForbidden, "a join token may be valid for at most %s; ask for a shorter one", maxJoinTokenLifetime)
	}
	return c, nil
}

// identify is authenticate that also returns the claims of the token in
// jwt mode (nil in dev mode).
func (a *authenticator) identify(auth map[string]any) (rooms.User, *claims, error) {
	switch a.mode {
	case AuthJWT:
		return a.fromTokenClaims(auth)
	case AuthHook:
		return rooms.User{}, nil, nil // the connect hook names the user
	}
	u, err := a.fromDev(auth)
	return u, nil, err
}

// addTokenData records in a socket's data what chatd needs later of the
// token it authenticated with: its exp and its allowed_rooms claim.
func addTokenData(data map[string]any, c *claims) {
	data[dataAuthAt] = time.Now().UnixMilli()
	if c == nil {
		return
	}
	if c.ExpiresAt != nil {
		data[dataExp] = c.ExpiresAt.Unix()
	}
	if c.IssuedAt != nil {
		data[dataIat] = c.IssuedAt.Unix()
	}
	if len(c.AllowedRooms) > 0 {
		data[dataAllowedRooms] = append([]string(nil), c.AllowedRooms...)
	} else {
		delete(data, dataAllowedRooms)
	}
}
