package signature

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	secret := []byte("a-secret-of-at-least-thirty-two-bytes")
	at := time.Unix(1765108800, 0)
	body := []byte(`{"events":[]}`)
	signed := func() http.Header {
		h := http.Header{}
		Sign(h, secret, at, body)
		return h
	}
	tests := []struct {
		name string
		edit func(http.Header)
		body []byte
		now  time.Time
		want error
	}{
		{"as signed", func(http.Header) {}, body, at, nil},
		{"within tolerance", func(http.Header) {}, body, at.Add(Tolerance), nil},
		{"replayed late", func(http.Header) {}, body, at.Add(Tolerance + time.Second), ErrExpired},
		{"from the future", func(http.Header) {}, body, at.Add(-Tolerance - time.Second), ErrExpired},
		{"body changed", func(http.Header) {}, []byte(`{"events":[1]}`), at, ErrMismatch},
		{"other secret", func(h http.Header) { h.Set(SignatureHeader, Compute([]byte("other"), at, body)) }, body, at, ErrMismatch},
		{"timestamp changed", func(h http.Header) { h.Set(TimestampHeader, "1765108801") }, body, at, ErrMismatch},
		{"rotation list", func(h http.Header) {
			h.Set(SignatureHeader, Compute([]byte("old"), at, body)+", "+h.Get(SignatureHeader))
		}, body, at, nil},
		{"no signature", func(h http.Header) { h.Del(SignatureHeader) }, body, at, ErrMissing},
		{"no timestamp", func(h http.Header) { h.Del(TimestampHeader) }, body, at, ErrMissing},
		{"bad timestamp", func(h http.Header) { h.Set(TimestampHeader, "soon") }, body, at, ErrMissing},
		{"bad hex", func(h http.Header) { h.Set(SignatureHeader, "v1=zz") }, body, at, ErrMismatch},
		{"unknown scheme", func(h http.Header) { h.Set(SignatureHeader, "v0="+h.Get(SignatureHeader)[3:]) }, body, at, ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := signed()
			tt.edit(h)
			if err := Verify(h, secret, tt.now, 0, tt.body); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
