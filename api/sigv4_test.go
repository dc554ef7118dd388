package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testAccessKey = "AKIDCHATDTEST"
	testSecretKey = "chatd/test/secret/key/0123456789abcdef"
)

// sigV4Request is what a test signs: the request and how it is signed.
type sigV4Request struct {
	method, path, body string
	accessKey, secret  string
	service, region    string
	at                 time.Time
}

// signed builds the request and signs it with the AWS SDK's SigV4 signer,
// as the SDKs sign API Gateway management calls.
func (sr sigV4Request) signed(t *testing.T, ts *httptest.Server) *http.Request {
	t.Helper()
	req, err := http.NewRequest(sr.method, ts.URL+sr.path, strings.NewReader(sr.body))
	if err != nil {
		t.Fatal(err)
	}
	if sr.body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(sr.body))
	creds := aws.Credentials{AccessKeyID: sr.accessKey, SecretAccessKey: sr.secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), sr.service, sr.region, sr.at); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestGatewaySigV4(t *testing.T) {
	s, ts := apiTestServer(t, Config{AWSAccessKeyID: testAccessKey, AWSSecretAccessKey: testSecretKey})
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	alice := apiDial(t, ts, map[string]any{"userId": "alice"}, nil)
	good := func(method, path, body string) sigV4Request {
		return sigV4Request{method: method, path: path, body: body, accessKey: testAccessKey, secret: testSecretKey,
			service: "execute-api", region: "eu-west-1", at: now}
	}

	t.Run("valid signatures are accepted", func(t *testing.T) {
		for _, path := range []string{"/prod/@connections/" + alice.id, "/@connections/" + alice.id} {
			r := apiSend(t, good(http.MethodPost, path, `{"hello":"world"}`).signed(t, ts))
			if r.status != http.StatusOK {
				t.Fatalf("POST %s: %d %s", path, r.status, r.raw)
			}
			if got := apiJSON(alice.next("push")); got != `{"hello":"world"}` {
				t.Errorf("push %s", got)
			}
			if r := apiSend(t, good(http.MethodGet, path, "").signed(t, ts)); r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
			}
		}
		// Any region; a date within 15 minutes either way.
		for _, sr := range []sigV4Request{
			func() sigV4Request {
				x := good(http.MethodGet, "/prod/@connections/"+alice.id, "")
				x.region = "ap-south-2"
				return x
			}(),
			func() sigV4Request {
				x := good(http.MethodGet, "/prod/@connections/"+alice.id, "")
				x.at = now.Add(-14 * time.Minute)
				return x
			}(),
			func() sigV4Request {
				x := good(http.MethodGet, "/prod/@connections/"+alice.id, "")
				x.at = now.Add(14 * time.Minute)
				return x
			}(),
		} {
			if r := apiSend(t, sr.signed(t, ts)); r.status != http.StatusOK {
				t.Errorf("%s at %v: %d %s", sr.region, sr.at, r.status, r.raw)
			}
		}
	})

	path := "/prod/@connections/" + alice.id
	refusals := []struct {
		name  string
		req   func() *http.Request
		words []string
	}{
		{"wrong secret", func() *http.Request {
			sr := good(http.MethodPost, path, "x")
			sr.secret = "not-the-secret"
			return sr.signed(t, ts)
		}, []string{"signature does not match"}},
		{"unknown access key", func() *http.Request {
			sr := good(http.MethodPost, path, "x")
			sr.accessKey = "AKIDSOMEONEELSE"
			return sr.signed(t, ts)
		}, []string{"access key"}},
		{"signed 16 minutes ago", func() *http.Request {
			sr := good(http.MethodPost, path, "x")
			sr.at = now.Add(-16 * time.Minute)
			return sr.signed(t, ts)
		}, []string{"15 minutes"}},
		{"signed 16 minutes ahead", func() *http.Request {
			sr := good(http.MethodPost, path, "x")
			sr.at = now.Add(16 * time.Minute)
			return sr.signed(t, ts)
		}, []string{"15 minutes"}},
		{"another service", func() *http.Request {
			sr := good(http.MethodPost, path, "x")
			sr.service = "s3"
			return sr.signed(t, ts)
		}, []string{"execute-api"}},
		{"body changed after signing", func() *http.Request {
			req := good(http.MethodPost, path, "pay 10").signed(t, ts)
			b := "pay 99"
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
			return req
		}, []string{"signature does not match"}},
		{"signed header changed", func() *http.Request {
			req := good(http.MethodPost, path, "x").signed(t, ts)
			req.Header.Set("Content-Type", "text/plain")
			return req
		}, []string{"signature does not match"}},
		{"path changed", func() *http.Request {
			req := good(http.MethodDelete, path, "").signed(t, ts)
			req.URL.Path = "/prod/@connections/AAAAAAAAAAAAAAAAAAAAAAAA"
			return req
		}, []string{"signature does not match"}},
		{"method changed", func() *http.Request {
			req := good(http.MethodGet, path, "").signed(t, ts)
			req.Method = http.MethodDelete
			return req
		}, []string{"signature does not match"}},
		{"empty body with a signed content-length", func() *http.Request {
			req := good(http.MethodPost, path, "").signed(t, ts)
			req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), "SignedHeaders=", "SignedHeaders=content-length;", 1))
			return req
		}, []string{"content-length: 0"}},
		{"no X-Amz-Date", func() *http.Request {
			req := good(http.MethodGet, path, "").signed(t, ts)
			req.Header.Del("X-Amz-Date")
			return req
		}, []string{"X-Amz-Date"}},
		{"malformed header", func() *http.Request {
			req := good(http.MethodGet, path, "").signed(t, ts)
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 garbage")
			return req
		}, []string{"malformed"}},
		{"bearer token without one configured", func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+testSecretKey)
			return req
		}, []string{"no API token"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			wantGatewayError(t, apiSend(t, tc.req()), http.StatusForbidden, "ForbiddenException", tc.words...)
		})
	}
	if alice.isGone() || alice.has("push") {
		t.Error("a refused request reached the socket")
	}

	t.Run("delete", func(t *testing.T) {
		if r := apiSend(t, good(http.MethodDelete, path, "").signed(t, ts)); r.status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.status, r.raw)
		}
		alice.waitGone()
		wantGatewayError(t, apiSend(t, good(http.MethodGet, path, "").signed(t, ts)), http.StatusGone, "GoneException")
	})

	t.Run("the /api/v1 routes stay off", func(t *testing.T) {
		wantError(t, apiDo(t, ts, http.MethodGet, "/api/v1/rooms/general/presence", testSecretKey, ""), http.StatusNotFound, "not_found")
	})
}

func TestGatewaySigV4WithoutKeys(t *testing.T) {
	s, ts := apiTestServer(t, Config{Token: apiToken})
	now := time.Now()
	s.now = func() time.Time { return now }
	c := apiDial(t, ts, map[string]any{"userId": "u"}, nil)
	sr := sigV4Request{method: http.MethodGet, path: "/prod/@connections/" + c.id, accessKey: testAccessKey, secret: testSecretKey,
		service: "execute-api", region: "us-east-1", at: now}
	wantGatewayError(t, apiSend(t, sr.signed(t, ts)), http.StatusForbidden, "ForbiddenException", "no AWS access key")
}

func TestParseSigV4Authorization(t *testing.T) {
	got, err := parseSigV4Authorization("AWS4-HMAC-SHA256 Credential=AKID/20250601/us-east-1/execute-api/aws4_request,SignedHeaders=host;x-amz-date,  Signature=abc")
	if err != nil {
		t.Fatal(err)
	}
	want := sigV4Authorization{accessKey: "AKID", date: "20250601", region: "us-east-1", service: "execute-api", terminator: "aws4_request",
		signedHeaders: "host;x-amz-date", signature: "abc"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, h := range []string{
		"",
		"AWS4-HMAC-SHA512 Credential=a/b/c/d/e, SignedHeaders=host, Signature=x",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=x",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e, Credential=a/b/c/d/e, SignedHeaders=host, Signature=x",
		"AWS4-HMAC-SHA256 Credential",
	} {
		if _, err := parseSigV4Authorization(h); err == nil || err.status != http.StatusForbidden {
			t.Errorf("%q: %v, want a 403", h, err)
		}
	}
}
