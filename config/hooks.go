package config

import (
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// HooksConfig is the hooks.* section: the requests chatd makes to the
// application's backend while a client waits (connect, join, message, rpc)
// and the API Gateway compatibility mode. Each hook is off until its URL is
// set.
type HooksConfig struct {
	// Secret signs every request chatd makes to the backend (HMAC-SHA256,
	// see package internal/signature); at least 32 characters, required
	// when any hook URL is set.
	Secret string `yaml:"secret" usage:"key that signs every request to the backend (X-Chatd-Signature), at least 32 characters; required with any hook URL or hooks.events.url" secret:"true"`
	// Timeout is the time limit of a hook request whose own timeout is 0.
	Timeout time.Duration `yaml:"timeout" usage:"time limit of a hook request, unless the hook sets its own"`
	// Headers lists the handshake headers forwarded to the connect hook and
	// to $connect in API Gateway mode; no other header leaves chatd.
	Headers []string `yaml:"headers" usage:"handshake headers forwarded to the connect hook and API Gateway's $connect (an allow-list)"`
	// Connect is asked when a socket connects: it may refuse it, or name
	// its user.
	Connect HookConfig `yaml:"connect"`
	// Join is asked before a user joins a room.
	Join HookConfig `yaml:"join"`
	// Message is asked before a message is stored: it may refuse it or
	// replace its text.
	Message HookConfig `yaml:"message"`
	// RPC answers the clients' rpc requests.
	RPC RPCHookConfig `yaml:"rpc"`
	// APIGateway posts API Gateway WebSocket events ($connect, $disconnect,
	// $default) to a Lambda-style handler.
	APIGateway APIGatewayConfig `yaml:"apigateway"`
	// Events POSTs the events (messages, members, users online and
	// offline, rooms occupied and vacated) to the backend, at least once.
	Events EventsConfig `yaml:"events"`
}

// HookConfig is one synchronous hook (hooks.connect, hooks.join,
// hooks.message).
type HookConfig struct {
	// URL is the backend's http or https URL; empty turns the hook off.
	URL string `yaml:"url" usage:"http(s) URL the hook POSTs to; empty turns it off"`
	// Timeout bounds one request; 0 is hooks.timeout.
	Timeout time.Duration `yaml:"timeout" usage:"time limit of one request; 0 is hooks.timeout"`
	// OnError is what chatd does when the backend fails (down, slow,
	// garbage): HookRefuse or HookAllow.
	OnError string `yaml:"on_error" usage:"when the backend fails: refuse (the default) or allow"`
}

// RPCHookConfig is hooks.rpc. A failed backend always answers unavailable.
type RPCHookConfig struct {
	// URL is the backend's http or https URL; empty turns rpc off.
	URL string `yaml:"url" usage:"http(s) URL that answers the clients' rpc requests; empty turns rpc off"`
	// Timeout bounds one request; 0 is hooks.timeout.
	Timeout time.Duration `yaml:"timeout" usage:"time limit of one rpc request; 0 is hooks.timeout"`
}

// APIGatewayConfig is hooks.apigateway.
type APIGatewayConfig struct {
	// URL receives each event as API Gateway's Lambda proxy event; empty
	// turns the mode off.
	URL string `yaml:"url" usage:"http(s) URL that receives API Gateway WebSocket events ($connect, $disconnect, $default); empty turns the mode off"`
	// DomainName is requestContext.domainName of the events: the host (and
	// port) at which the handler reaches chatd's @connections routes.
	DomainName string `yaml:"domain_name" usage:"requestContext.domainName of the events: host[:port] where the handler reaches chatd (https://domain_name/stage)"`
	// Stage is requestContext.stage of the events.
	Stage string `yaml:"stage" usage:"requestContext.stage of the events"`
	// Timeout bounds one request; 0 is hooks.timeout.
	Timeout time.Duration `yaml:"timeout" usage:"time limit of one event request; 0 is hooks.timeout"`
}

// Fail modes of a hook (hooks.*.on_error).
const (
	HookRefuse = "refuse"
	HookAllow  = "allow"
)

// Bounds of the hooks.* values Validate accepts.
const (
	minHookSecret  = 32
	maxHookTimeout = 30 * time.Second
	maxHookHeaders = 64
)

// DefaultHookHeaders are the handshake headers forwarded when hooks.headers
// is not set: what describes the client, nothing that authenticates it to
// chatd's own origin (Cookie, Authorization) and nothing a proxy adds
// (chatd sends the client address itself).
func DefaultHookHeaders() []string {
	return []string{"User-Agent", "Origin", "Accept-Language"}
}

// AnyURL reports whether any hook of the section is on.
func (h HooksConfig) AnyURL() bool {
	return h.Connect.URL != "" || h.Join.URL != "" || h.Message.URL != "" || h.RPC.URL != "" || h.APIGateway.URL != ""
}

func (c *Config) validateHooks(p *problems) {
	h := &c.Hooks
	switch n := len(h.Secret); {
	case n == 0 && (h.AnyURL() || h.Events.URL != ""):
		p.add("hooks.secret", "required when a hook or hooks.events.url is set: chatd signs every request with it; generate one with `openssl rand -hex 32`")
	case n > 0 && n < minHookSecret && !isPlaceholder(h.Secret):
		p.add("hooks.secret", "must be at least %d characters, not %d; generate one with `openssl rand -hex 32`", minHookSecret, n)
	}
	if isPlaceholder(h.Secret) {
		p.add("hooks.secret", "is the example placeholder from the deploy files; generate a real secret, e.g. with `openssl rand -hex 32`")
	}
	if h.Timeout <= 0 || h.Timeout > maxHookTimeout {
		p.add("hooks.timeout", "must be more than 0 and at most %s, such as \"1s\", not %s", formatDuration(maxHookTimeout), formatDuration(h.Timeout))
	}
	if len(h.Headers) > maxHookHeaders {
		p.add("hooks.headers", "lists %d headers; at most %d", len(h.Headers), maxHookHeaders)
	}
	for _, name := range h.Headers {
		if !validHeaderName(name) {
			p.add("hooks.headers", "%q is not a header name such as User-Agent", name)
		}
	}
	for _, hk := range []struct {
		key string
		cfg HookConfig
	}{{"hooks.connect", h.Connect}, {"hooks.join", h.Join}, {"hooks.message", h.Message}} {
		checkHookURL(p, hk.key+".url", hk.cfg.URL)
		checkHookTimeout(p, hk.key+".timeout", hk.cfg.Timeout)
		if hk.cfg.OnError != HookRefuse && hk.cfg.OnError != HookAllow {
			p.add(hk.key+".on_error", "%q is not refuse or allow", hk.cfg.OnError)
		}
	}
	checkHookURL(p, "hooks.rpc.url", h.RPC.URL)
	checkHookTimeout(p, "hooks.rpc.timeout", h.RPC.Timeout)
	g := &h.APIGateway
	checkHookURL(p, "hooks.apigateway.url", g.URL)
	checkHookTimeout(p, "hooks.apigateway.timeout", g.Timeout)
	if g.URL != "" {
		if g.DomainName == "" {
			p.add("hooks.apigateway.domain_name", "required with hooks.apigateway.url: the host[:port] at which the handler reaches chatd, such as chat.example.com")
		}
		if g.Stage == "" {
			p.add("hooks.apigateway.stage", "required with hooks.apigateway.url, such as production")
		}
	}
	if d := g.DomainName; d != "" {
		if u, err := url.Parse("https://" + d); err != nil || u.Host != d || u.Hostname() == "" {
			p.add("hooks.apigateway.domain_name", "%q is not a host or host:port, such as chat.example.com", d)
		}
	}
	if s := g.Stage; s != "" && !validStage(s) {
		p.add("hooks.apigateway.stage", "%q must be 1 to 128 characters of A-Z a-z 0-9 _ - (one path segment)", s)
	}
	if c.Auth.Mode == "hook" {
		if h.Connect.URL == "" {
			p.add("auth.mode", "\"hook\" needs hooks.connect.url: the connect hook names each socket's user")
		} else if h.Connect.OnError == HookAllow {
			p.add("hooks.connect.on_error", "must be refuse while auth.mode is \"hook\": without the backend's answer a socket has no user")
		}
	}
}

func checkHookURL(p *problems, key, v string) {
	if v == "" {
		return
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key, "must be an http or https URL such as https://backend.internal/chatd/hooks")
		return
	}
	if u.User != nil {
		p.add(key, "must not hold a user name or password; chatd signs its requests with hooks.secret instead")
	}
	if u.Fragment != "" {
		p.add(key, "must not have a #fragment")
	}
}

func checkHookTimeout(p *problems, key string, d time.Duration) {
	if d < 0 || d > maxHookTimeout {
		p.add(key, "must be from 0 (hooks.timeout) to %s, not %s", formatDuration(maxHookTimeout), formatDuration(d))
	}
}

func validHeaderName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tokenChar(name[i]) {
			return false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name) != ""
}

func validStage(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !alnum(b) && b != '_' && b != '-' {
			return false
		}
	}
	return true
}

// alnum reports whether b is an ASCII letter or digit.
func alnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// tokenChar reports whether b may be in an HTTP header name (RFC 9110
// token).
func tokenChar(b byte) bool {
	return alnum(b) || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// TimeoutOf returns the time limit of a hook whose own timeout is d: d, or
// the section's Timeout when d is 0.
func (h HooksConfig) TimeoutOf(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return h.Timeout
}
