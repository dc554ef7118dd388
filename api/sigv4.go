package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigV4 as API Gateway's management API accepts it.
const (
	sigV4Algorithm  = "AWS4-HMAC-SHA256"
	sigV4Service    = "execute-api"
	sigV4Terminator = "aws4_request"
	amzDateFormat   = "20060102T150405Z"
	// sigV4MaxSkew is how far X-Amz-Date may be from the server's clock.
	sigV4MaxSkew = 15 * time.Minute
)

// sigV4Authorization is a parsed "Authorization: AWS4-HMAC-SHA256 ..."
// header.
type sigV4Authorization struct {
	accessKey     string
	date          string // YYYYMMDD of the credential scope
	region        string
	service       string
	terminator    string
	signedHeaders string // as sent: lowercase names joined by ";"
	signature     string // hex
}

// parseSigV4Authorization parses an Authorization header of the form
// "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/execute-api/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=<hex>".
func parseSigV4Authorization(h string) (sigV4Authorization, *gatewayError) {
	var out sigV4Authorization
	rest, ok := strings.CutPrefix(h, sigV4Algorithm+" ")
	if !ok {
		return out, forbidden("the Authorization header must start with %s", sigV4Algorithm)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return out, forbidden("the Authorization header is malformed: %q is not key=value", truncate(strings.TrimSpace(part), 64))
		}
		if _, dup := fields[k]; dup {
			return out, forbidden("the Authorization header names %s twice", truncate(k, 32))
		}
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			return out, forbidden("the Authorization header has no %s", k)
		}
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 {
		return out, forbidden("the Credential must be <access key>/<date>/<region>/<service>/aws4_request")
	}
	out.accessKey, out.date, out.region, out.service, out.terminator = scope[0], scope[1], scope[2], scope[3], scope[4]
	out.signedHeaders = fields["SignedHeaders"]
	out.signature = fields["Signature"]
	return out, nil
}

// verifySigV4 checks a SigV4-signed request: the access key is the
// configured one, X-Amz-Date is within sigV4MaxSkew of the clock, the
// credential scope names execute-api, and the signature is right. The
// signature is checked by re-signing a canonical copy of the request (same
// method, path, query, signed headers, X-Amz-Date and payload hash) with
// the AWS SDK's signer and comparing the two in constant time.
func (a *Handler) verifySigV4(r *http.Request, body []byte) *gatewayError {
	auth, gerr := parseSigV4Authorization(r.Header.Get("Authorization"))
	if gerr != nil {
		return gerr
	}
	if !secretEqual(auth.accessKey, a.cfg.AWSAccessKeyID) {
		return forbidden("the access key %q is not one chatd knows", truncate(auth.accessKey, 32))
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return forbidden("a SigV4-signed request needs an X-Amz-Date header")
	}
	at, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return forbidden("X-Amz-Date must be a UTC time such as 20240101T120000Z")
	}
	if skew := a.now().Sub(at); skew > sigV4MaxSkew || skew < -sigV4MaxSkew {
		return forbidden("the signature is dated %s, more than %d minutes from the server's time %s; check the signer's clock",
			amzDate, int(sigV4MaxSkew.Minutes()), a.now().UTC().Format(amzDateFormat))
	}
	if auth.date != at.Format("20060102") {
		return forbidden("the credential scope's date %q is not the date of X-Amz-Date", truncate(auth.date, 16))
	}
	if auth.service != sigV4Service {
		return forbidden("the credential scope names service %q; chatd answers for %q", truncate(auth.service, 32), sigV4Service)
	}
	if auth.region == "" {
		return forbidden("the credential scope has no region")
	}
	if auth.terminator != sigV4Terminator {
		return forbidden("the credential scope must end with %s", sigV4Terminator)
	}
	signed := strings.Split(auth.signedHeaders, ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return forbidden("SignedHeaders must include host and x-amz-date")
	}
	if slices.Contains(signed, "content-length") && len(body) == 0 {
		// The SDK's signer signs content-length only when it is above 0.
		return forbidden("chatd cannot check a signature over \"content-length: 0\"; send a non-empty body (an empty string as Data is fine)")
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		return forbidden("X-Amz-Content-Sha256 is not the SHA-256 of the body")
	}

	c := canonicalCopy(r, signed)
	creds := aws.Credentials{AccessKeyID: a.cfg.AWSAccessKeyID, SecretAccessKey: a.cfg.AWSSecretAccessKey}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, c, payloadHash, auth.service, auth.region, at); err != nil {
		return &gatewayError{status: http.StatusInternalServerError, errType: "InternalServerErrorException", message: "the signature could not be checked", err: err}
	}
	want, gerr := parseSigV4Authorization(c.Header.Get("Authorization"))
	if gerr != nil {
		return &gatewayError{status: http.StatusInternalServerError, errType: "InternalServerErrorException", message: "the signature could not be checked", err: gerr}
	}
	sigOK := subtle.ConstantTimeCompare([]byte(want.signature), []byte(auth.signature)) == 1
	if want.signedHeaders != auth.signedHeaders || !sigOK {
		return forbidden("the signature does not match the request; check the secret access key, and that nothing changed the request after it was signed")
	}
	return nil
}

// canonicalCopy builds the request the client signed, as far as SigV4
// sees it: method, host, escaped path, query, the signed headers and the
// content length when it was signed.
func canonicalCopy(r *http.Request, signed []string) *http.Request {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	c := &http.Request{
		Method: r.Method,
		URL: &url.URL{
			Scheme:   scheme,
			Host:     r.Host,
			Path:     r.URL.Path,
			RawPath:  r.URL.RawPath,
			RawQuery: r.URL.RawQuery,
		},
		Host:   r.Host,
		Header: make(http.Header),
	}
	for _, name := range signed {
		switch name {
		case "host":
			// The signer signs c.Host.
		case "content-length":
			c.ContentLength = r.ContentLength
		default:
			if vals := r.Header.Values(name); len(vals) > 0 {
				c.Header[textproto.CanonicalMIMEHeaderKey(name)] = vals
			}
		}
	}
	return c
}
