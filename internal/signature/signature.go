// Package signature signs the HTTP requests chatd makes to an application's
// backend (hooks and events), so that the backend can tell them from forged
// ones and refuse replays.
//
// A signed request carries two headers:
//
//	X-Chatd-Timestamp: 1765108800
//	X-Chatd-Signature: v1=<hex of HMAC-SHA256(secret, "1765108800." + body)>
//
// The timestamp is Unix seconds. Signing it with the body lets a receiver
// refuse a captured request replayed later than its tolerance (Tolerance by
// default). The signature header may list several comma-separated v1 values
// while a secret is being rotated; one matching value is enough.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a signed request.
const (
	TimestampHeader = "X-Chatd-Timestamp"
	SignatureHeader = "X-Chatd-Signature"
)

// Tolerance is how far, in either direction, a request's timestamp may be
// from the receiver's clock before Verify calls it a replay.
const Tolerance = 5 * time.Minute

// Errors Verify returns.
var (
	ErrMissing  = errors.New("signature: missing timestamp or signature header")
	ErrExpired  = errors.New("signature: timestamp outside the tolerance")
	ErrMismatch = errors.New("signature: no signature matches the body")
)

// Compute returns the "v1=<hex>" value for body signed at ts with secret.
func Compute(secret []byte, ts time.Time, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, ts.Unix(), body))
}

// Sign sets the timestamp and signature headers of h for body, signed at now.
func Sign(h http.Header, secret []byte, now time.Time, body []byte) {
	h.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	h.Set(SignatureHeader, Compute(secret, now, body))
}

// Verify checks the headers of a signed request against body: the timestamp
// must be within tolerance of now (Tolerance when tolerance is 0) and one of
// the listed v1 signatures must match.
func Verify(h http.Header, secret []byte, now time.Time, tolerance time.Duration, body []byte) error {
	tsText, sigs := h.Get(TimestampHeader), h.Get(SignatureHeader)
	if tsText == "" || sigs == "" {
		return ErrMissing
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrMissing
	}
	if tolerance <= 0 {
		tolerance = Tolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrExpired
	}
	want := mac(secret, ts, body)
	for _, s := range strings.Split(sigs, ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(s), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrMismatch
}

func mac(secret []byte, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}
