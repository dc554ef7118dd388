package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatd/chatd/events"
	"github.com/chatd/chatd/protocol"
)

// Limits of the values Validate accepts.
const (
	maxHistorySize  = 1_000_000
	maxMessageBytes = 1 << 20  // 1 MiB
	minPayloadBytes = 1024     // 1 KiB
	maxPayloadBytes = 10 << 20 // 10 MiB

	minSendBufferBytes = 64 << 10 // 64 KiB
	maxSendBufferBytes = 1 << 30  // 1 GiB
	// payloadOverhead is the room a socket.io packet needs beside the message
	// text, in bytes.
	payloadOverhead = 1024
	maxRoomsPerUser = 100_000
	minStreamLength = 100
	minPresenceTTL  = 3 * time.Second
	maxPresenceTTL  = 60 * time.Second
	minSecretBytes  = 32
	maxLeeway       = 5 * time.Minute
	maxPrefix       = 64
	maxInstanceID   = 64
)

// Limits of the http.* and api.token values Validate accepts.
const (
	// minAPITokenBytes is the shortest api.token, as for the JWT secret.
	minAPITokenBytes  = 32
	minMaxHeaderBytes = 4 << 10
	maxMaxHeaderBytes = 1 << 20
)

var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_:.-]+$`)

// reservedEvents are the event names api.gateway_event must not take: those
// socket.io reserves and those of the chat protocol.
var reservedEvents = protocol.ReservedEvents()

// problems collects the errors of Validate.
type problems []error

// add records an error that starts with key.
func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Validate checks every setting and returns the errors.Join of one error per
// problem, each starting with the key at fault (such as "history.size: ...")
// and saying what would be valid. It reads auth.jwt.public_key_file. Servers
// call it again on the Config they are given, since embedders and tests may
// skip Load.
func (c *Config) Validate() error {
	var p problems

	listenOK := c.validateListen(&p)
	c.validateHTTP(&p)
	c.validateConnLimits(&p)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		p.add("log.format", "%q is not text or json", c.Log.Format)
	}
	c.validateRedis(&p)
	c.validateAuth(&p, listenOK)
	c.validateAPI(&p)
	c.validateHooks(&p)
	c.validateEvents(&p)
	c.validateAdmin(&p)
	if _, err := c.Rooms.ParsedPolicies(); err != nil {
		p.add("rooms.policies", "%v", err)
	}
	for _, secret := range []struct{ key, value string }{
		{"auth.jwt.secret", c.Auth.JWT.Secret},
		{"api.token", c.API.Token},
		{"api.aws_secret_access_key", c.API.AWSSecretAccessKey},
		{"redis.password", c.Redis.Password},
		{"hooks.secret", c.Hooks.Secret},
	} {
		if isPlaceholder(secret.value) {
			p.add(secret.key, "is the example placeholder from the deploy files; generate a real secret, e.g. with `openssl rand -hex 32`")
		}
	}
	for _, o := range c.CORS.Origins {
		if msg := checkOrigin(o); msg != "" {
			p.add("cors.origins", "%q %s", o, msg)
		}
	}

	intRange(&p, "history.size", c.History.Size, 1, maxHistorySize)
	if c.History.TTL < 0 {
		p.add("history.ttl", "must not be negative (0 keeps history forever), not %s", formatDuration(c.History.TTL))
	}
	intRange(&p, "memory.burst_gc_percent", c.Memory.BurstGCPercent, 0, 100)
	intRange(&p, "limits.message_bytes", c.Limits.MessageBytes, 1, maxMessageBytes)
	intRange(&p, "limits.payload_bytes", c.Limits.PayloadBytes, minPayloadBytes, maxPayloadBytes)
	if c.Limits.PayloadBytes < c.Limits.MessageBytes+payloadOverhead {
		p.add("limits.payload_bytes", "must be at least limits.message_bytes + %d = %d, not %d",
			payloadOverhead, c.Limits.MessageBytes+payloadOverhead, c.Limits.PayloadBytes)
	}
	intRange(&p, "limits.rooms_per_user", c.Limits.RoomsPerUser, 1, maxRoomsPerUser)
	positive(&p, "limits.events_per_second", c.Limits.EventsPerSecond)
	atLeast(&p, "limits.event_burst", c.Limits.EventBurst, 1)
	atLeast(&p, "limits.rate_strikes", c.Limits.RateStrikes, 1)
	intRange(&p, "limits.send_buffer_bytes", c.Limits.SendBufferBytes, minSendBufferBytes, maxSendBufferBytes)

	if c.Shutdown.Timeout <= 0 {
		p.add("shutdown.timeout", "must be more than 0, such as \"30s\", not %s", formatDuration(c.Shutdown.Timeout))
	}
	if c.Shutdown.Drain < 0 {
		p.add("shutdown.drain", "must not be negative, not %s", formatDuration(c.Shutdown.Drain))
	} else if c.Shutdown.Timeout > 0 && c.Shutdown.Drain >= c.Shutdown.Timeout {
		p.add("shutdown.drain", "must be less than shutdown.timeout (%s), not %s",
			formatDuration(c.Shutdown.Timeout), formatDuration(c.Shutdown.Drain))
	}

	if c.Recovery.MaxDisconnection < 0 {
		p.add("recovery.max_disconnection", "must not be negative (0 turns recovery off), not %s", formatDuration(c.Recovery.MaxDisconnection))
	}
	atLeast(&p, "recovery.max_packets", c.Recovery.MaxPackets, 1)
	atLeast(&p, "recovery.stream_length", c.Recovery.StreamLength, minStreamLength)

	if c.Presence.TTL < minPresenceTTL || c.Presence.TTL > maxPresenceTTL {
		p.add("presence.ttl", "must be from %s to %s, not %s",
			formatDuration(minPresenceTTL), formatDuration(maxPresenceTTL), formatDuration(c.Presence.TTL))
	}

	if id := c.Instance.ID; id != "" && (len(id) > maxInstanceID || strings.IndexFunc(id, func(r rune) bool { return !isIDChar(r) }) >= 0) {
		p.add("instance.id", "%q must be at most %d characters of A-Z a-z 0-9 _ . - (or empty for a generated one)", id, maxInstanceID)
	}
	return errors.Join(p...)
}

// validateListen checks listen and reports whether it is valid.
func (c *Config) validateListen(p *problems) bool {
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		p.add("listen", "%q is not host:port, such as \":3000\" or \"127.0.0.1:3000\"", c.Listen)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add("listen", "port %q of %q is not a number from 0 to 65535", port, c.Listen)
		return false
	}
	return true
}

func (c *Config) validateHTTP(p *problems) {
	h := &c.HTTP
	for _, e := range h.TrustedProxies {
		if msg := checkProxy(e); msg != "" {
			p.add("http.trusted_proxies", "%s", msg)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"http.idle_timeout", h.IdleTimeout}, {"http.header_timeout", h.HeaderTimeout}, {"http.body_timeout", h.BodyTimeout}} {
		if d.v <= 0 {
			p.add(d.key, "must be more than 0, such as \"15s\", not %s", formatDuration(d.v))
		}
	}
	intRange(p, "http.max_header_bytes", h.MaxHeaderBytes, minMaxHeaderBytes, maxMaxHeaderBytes)
	if m := c.Metrics.Listen; m != "" {
		if _, port, err := net.SplitHostPort(m); err != nil {
			p.add("metrics.listen", "%q is not host:port, such as \"127.0.0.1:9090\"", m)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			p.add("metrics.listen", "port %q of %q is not a number from 0 to 65535", port, m)
		} else if m == c.Listen && n != 0 {
			p.add("metrics.listen", "%q is listen itself; leave metrics.listen empty to serve /metrics there", m)
		}
	}
}

// checkProxy returns what is wrong with an http.trusted_proxies entry, or "".
func checkProxy(e string) string {
	if strings.Contains(e, "/") {
		if _, err := netip.ParsePrefix(e); err != nil {
			return fmt.Sprintf("%q is not a CIDR such as 10.0.0.0/8", e)
		}
		return ""
	}
	if _, err := netip.ParseAddr(e); err != nil {
		return fmt.Sprintf("%q is not an IP address or a CIDR such as 10.0.0.0/8", e)
	}
	return ""
}

func (c *Config) validateRedis(p *problems) {
	r := &c.Redis
	if r.URL != "" {
		if msg := checkRedisURL(r.URL); msg != "" {
			p.add("redis.url", "%s", msg)
		}
	}
	if r.URL != "" && len(r.Addrs) > 0 {
		p.add("redis.addrs", "cannot be set together with redis.url; use redis.url for one server, redis.addrs for Sentinel or Redis Cluster")
	}
	for _, a := range r.Addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			p.add("redis.addrs", "%q is not host:port, such as \"redis-0:26379\"", a)
		}
	}
	if r.MasterName != "" && len(r.Addrs) == 0 {
		p.add("redis.master_name", "requires redis.addrs (the Sentinel addresses)")
	}
	if len(r.Prefix) == 0 || len(r.Prefix) > maxPrefix || !prefixPattern.MatchString(r.Prefix) {
		p.add("redis.prefix", "%q must be 1 to %d characters of A-Z a-z 0-9 _ : . -", r.Prefix, maxPrefix)
	}
	if r.Timeout <= 0 {
		p.add("redis.timeout", "must be more than 0, such as \"2s\", not %s", formatDuration(r.Timeout))
	}
}

// checkRedisURL returns what is wrong with u, or "". It never repeats the
// URL, which may hold a password.
func checkRedisURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("the value is not a URL (%v); use redis://host:6379 or rediss://host:6379", err)
	}
	if parsed.Scheme != "redis" && parsed.Scheme != "rediss" {
		return fmt.Sprintf("scheme %q is not redis or rediss; use redis://host:6379 or rediss://host:6379", parsed.Scheme)
	}
	if _, err := redis.ParseURL(u); err != nil {
		return strings.TrimPrefix(err.Error(), "redis: ")
	}
	return ""
}

func (c *Config) validateAuth(p *problems, listenOK bool) {
	a := &c.Auth
	switch a.Mode {
	case "dev":
		c.validateDevMode(p, listenOK)
	case "jwt":
		if a.JWT.Secret == "" && a.JWT.PublicKeyFile == "" {
			p.add("auth.jwt.secret", "required when auth.mode is \"jwt\" (or set auth.jwt.public_key_file)")
		}
	case "hook":
		// validateHooks checks that the connect hook is there.
		if a.JWT.Secret != "" || a.JWT.PublicKeyFile != "" {
			p.add("auth.mode", "\"hook\" checks no tokens, but auth.jwt keys are set; use auth.mode: jwt to check tokens (the connect hook runs there too)")
		}
	default:
		p.add("auth.mode", "%q is not dev, jwt or hook", a.Mode)
	}
	if a.JWT.Leeway < 0 || a.JWT.Leeway > maxLeeway {
		p.add("auth.jwt.leeway", "must be from 0s to %s, not %s", formatDuration(maxLeeway), formatDuration(a.JWT.Leeway))
	}
	for _, aud := range a.JWT.Audience {
		if strings.TrimSpace(aud) == "" {
			p.add("auth.jwt.audience", "must not hold an empty value; list the aud values tokens may carry, such as chatd")
		}
	}
	if n := len(a.JWT.Secret); n > 0 && n < minSecretBytes {
		p.add("auth.jwt.secret", "must be at least %d bytes, not %d", minSecretBytes, n)
	}
	if a.JWT.PublicKeyFile != "" {
		if _, err := a.JWT.PublicKey(); err != nil {
			p.add("auth.jwt.public_key_file", "%v", err)
		}
	}
}

// validateDevMode keeps dev mode, where clients name themselves, from
// running open by accident: only on loopback unless auth.dev_insecure says
// otherwise, and never beside JWT keys that would suggest tokens are
// checked.
func (c *Config) validateDevMode(p *problems, listenOK bool) {
	a := &c.Auth
	if a.JWT.Secret != "" {
		p.add("auth.jwt.secret", "is set while auth.mode is \"dev\", which checks no tokens; set auth.mode: jwt to check them, or remove auth.jwt.secret")
	}
	if a.JWT.PublicKeyFile != "" {
		p.add("auth.jwt.public_key_file", "is set while auth.mode is \"dev\", which checks no tokens; set auth.mode: jwt to check them, or remove auth.jwt.public_key_file")
	}
	if listenOK && !a.DevInsecure && !IsLoopback(c.Listen) {
		p.add("auth.mode", "\"dev\" lets anyone sign in as anyone, so it is allowed only on a loopback listen address, and listen is %q; "+
			"listen on 127.0.0.1 (such as listen: 127.0.0.1:3000), set auth.mode: jwt, or set auth.dev_insecure: true for a try-out", c.Listen)
	}
}

// IsLoopback reports whether a listen address (host:port) accepts only
// connections from this machine: localhost or a loopback IP. An empty host,
// 0.0.0.0 and :: listen on every interface.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Bounds of the admin.* settings.
const (
	// MinAdminBcryptCost is the lowest bcrypt cost admin.password_hash may
	// have: each guess then costs an attacker tens of milliseconds of CPU.
	MinAdminBcryptCost = 10
	maxAdminUsername   = 128
	minAdminSessionTTL = time.Minute
	maxAdminSessionTTL = 30 * 24 * time.Hour
)

func (c *Config) validateAdmin(p *problems) {
	a := c.Admin
	switch {
	case a.Username != "" && a.PasswordHash == "":
		p.add("admin.password_hash", "is required with admin.username; make one with `chatd hash-password`")
	case a.Username == "" && a.PasswordHash != "":
		p.add("admin.username", "is required with admin.password_hash")
	}
	if len(a.Username) > maxAdminUsername || strings.IndexFunc(a.Username, unicode.IsControl) >= 0 {
		p.add("admin.username", "must be at most %d characters without control characters", maxAdminUsername)
	}
	if a.PasswordHash != "" {
		cost, err := bcrypt.Cost([]byte(a.PasswordHash))
		switch {
		case err != nil:
			p.add("admin.password_hash", "is not a bcrypt hash (a plain password is refused); make one with `chatd hash-password`")
		case cost < MinAdminBcryptCost:
			p.add("admin.password_hash", "has bcrypt cost %d; it must be at least %d (make a new one with `chatd hash-password`)", cost, MinAdminBcryptCost)
		}
	}
	if a.SessionTTL < minAdminSessionTTL || a.SessionTTL > maxAdminSessionTTL {
		p.add("admin.session_ttl", "must be from %s to %s, not %s",
			formatDuration(minAdminSessionTTL), formatDuration(maxAdminSessionTTL), formatDuration(a.SessionTTL))
	}
}

func (c *Config) validateAPI(p *problems) {
	a := &c.API
	switch {
	case a.GatewayEvent == "":
		p.add("api.gateway_event", "must not be empty; the default is \"push\"")
	case slices.Contains(reservedEvents, a.GatewayEvent):
		p.add("api.gateway_event", "%q is reserved by socket.io or the chat protocol; choose another name, such as \"push\"", a.GatewayEvent)
	}
	if a.AWSAccessKeyID != "" && a.AWSSecretAccessKey == "" {
		p.add("api.aws_secret_access_key", "required when api.aws_access_key_id is set")
	}
	if a.AWSSecretAccessKey != "" && a.AWSAccessKeyID == "" {
		p.add("api.aws_access_key_id", "required when api.aws_secret_access_key is set")
	}
	if n := len(a.Token); n > 0 && n < minAPITokenBytes && !isPlaceholder(a.Token) {
		p.add("api.token", "must be at least %d characters, not %d; generate one with `openssl rand -hex 32`", minAPITokenBytes, n)
	}
	positive(p, "api.rate", a.Rate)
	atLeast(p, "api.burst", a.Burst, 1)
}

// checkOrigin returns what is wrong with a cors.origins entry, or "".
func checkOrigin(o string) string {
	const want = "must be * or an origin such as https://chat.example.com or http://localhost:8080, without a path"
	if o == "*" {
		return ""
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return want
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return want
		}
	}
	return ""
}

func intRange(p *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(key, "must be from %d to %d, not %d", lo, hi, v)
	}
}

func atLeast(p *problems, key string, v, lo int) {
	if v < lo {
		p.add(key, "must be at least %d, not %d", lo, v)
	}
}

func positive(p *problems, key string, v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		p.add(key, "must be a number more than 0, not %g", v)
	}
}

// isIDChar reports whether r may appear in an instance id.
func isIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}

// isPlaceholder reports whether a secret is one of the "change-me" values
// of the example deploy files, which must never reach production.
func isPlaceholder(secret string) bool {
	return strings.HasPrefix(strings.ToLower(secret), "change-me") || strings.HasPrefix(strings.ToLower(secret), "changeme")
}

func (c *Config) validateConnLimits(p *problems) {
	l := &c.Limits
	atLeast(p, "limits.sockets_per_user", l.SocketsPerUser, 0)
	atLeast(p, "limits.connections_per_address", l.ConnectionsPerAddress, 0)
	atLeast(p, "limits.connections", l.Connections, 0)
	if !(l.UserEventsPerSecond >= 0) || math.IsInf(l.UserEventsPerSecond, 0) {
		p.add("limits.user_events_per_second", "must be a number, 0 (off) or more, not %g", l.UserEventsPerSecond)
	}
	if l.UserEventsPerSecond > 0 {
		atLeast(p, "limits.user_event_burst", l.UserEventBurst, 1)
	}
	if !(l.HandshakesPerSecond >= 0) || math.IsInf(l.HandshakesPerSecond, 0) {
		p.add("limits.handshakes_per_second", "must be a number, 0 (off) or more, not %g", l.HandshakesPerSecond)
	}
}

// Limits of the hooks.events.* values Validate accepts.
const (
	minEventsTimeout  = 100 * time.Millisecond
	maxEventsTimeout  = time.Minute
	minEventsRetryFor = time.Second
	maxEventsRetryFor = 24 * time.Hour
	maxEventsBatch    = 1000
	maxEventsWait     = 10 * time.Second
	maxEventsQueue    = 10_000_000
)

func (c *Config) validateEvents(p *problems) {
	e := &c.Hooks.Events
	if e.URL != "" {
		if msg := checkBackendURL(e.URL); msg != "" {
			p.add("hooks.events.url", "%s", msg)
		}
	}
	durationRange(p, "hooks.events.timeout", e.Timeout, minEventsTimeout, maxEventsTimeout)
	durationRange(p, "hooks.events.retry_for", e.RetryFor, minEventsRetryFor, maxEventsRetryFor)
	durationRange(p, "hooks.events.batch_wait", e.BatchWait, 0, maxEventsWait)
	intRange(p, "hooks.events.batch_max", e.BatchMax, 1, maxEventsBatch)
	intRange(p, "hooks.events.queue_max", e.QueueMax, 1, maxEventsQueue)
	for _, t := range e.Types {
		if !events.KnownType(t) {
			p.add("hooks.events.types", "%q is not an event type; the types are %s", t, strings.Join(events.Types, ", "))
		}
	}
}

// checkBackendURL returns what is wrong with the URL of a backend that
// chatd POSTs to, or "". It never repeats the URL.
func checkBackendURL(u string) string {
	const want = "must be an http or https URL such as https://backend.example.com/chatd/events"
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.Hostname() == "" {
		return want
	}
	if parsed.User != nil {
		return "must not carry a user name or password: chatd signs every request with hooks.secret instead"
	}
	if parsed.Fragment != "" {
		return "must not have a #fragment"
	}
	return ""
}

func durationRange(p *problems, key string, v, lo, hi time.Duration) {
	if v < lo || v > hi {
		p.add(key, "must be from %s to %s, not %s", formatDuration(lo), formatDuration(hi), formatDuration(v))
	}
}
