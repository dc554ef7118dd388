package config

import (
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/protocol"
	"github.com/chatd/chatd/rooms"
)

// Config is every setting of chatd. The yaml tag of each field is its key in
// the YAML file; the key also names the environment variable (CHATD_ followed
// by the key in upper case with '.' replaced by '_') and the flag ('.' and '_'
// replaced by '-'). The usage tag is the text of --help, and secret:"true"
// marks values that Masked hides.
type Config struct {
	// Listen is the host:port the HTTP server (socket.io, API, health, web
	// page) listens on. Left at its default it is 127.0.0.1:3000 in dev auth
	// mode (loopback only) and :3000 in jwt mode.
	Listen string `yaml:"listen" usage:"host:port to listen on for socket.io, the API, health checks and the web page (default :3000 in jwt mode)"`
	// HTTP bounds the HTTP connections of Listen and names the proxies in
	// front of chatd.
	HTTP HTTPConfig `yaml:"http"`
	// Log chooses what is logged and how.
	Log LogConfig `yaml:"log"`
	// Redis connects the instances of a cluster; without it chatd is a single
	// instance with in-memory state.
	Redis RedisConfig `yaml:"redis"`
	// Auth decides who a connecting socket is.
	Auth AuthConfig `yaml:"auth"`
	// API configures the HTTP server API and its API Gateway compatible routes.
	API APIConfig `yaml:"api"`
	// CORS lists the browser origins allowed to connect cross-origin.
	CORS CORSConfig `yaml:"cors"`
	// Rooms decides who may be in which room.
	Rooms RoomsConfig `yaml:"rooms"`
	// History bounds the messages kept per room.
	History HistoryConfig `yaml:"history"`
	// Limits protect the server from large or fast clients.
	Limits LimitsConfig `yaml:"limits"`
	// Shutdown bounds the drain on SIGTERM.
	Shutdown ShutdownConfig `yaml:"shutdown"`
	// Recovery configures socket.io connection state recovery.
	Recovery RecoveryConfig `yaml:"recovery"`
	// Presence configures how instances announce their online users.
	Presence PresenceConfig `yaml:"presence"`
	// Instance names this process among the instances of a cluster.
	Instance InstanceConfig `yaml:"instance"`
	// Memory configures how chatd gives memory back to the system.
	Memory MemoryConfig `yaml:"memory"`
	// Metrics configures the Prometheus endpoint.
	Metrics MetricsConfig `yaml:"metrics"`
	// Hooks are the calls chatd makes to the application's backend.
	Hooks HooksConfig `yaml:"hooks"`
	// Web configures the bundled browser client.
	Web WebConfig `yaml:"web"`
	// Admin turns on the socket.io Admin UI: the /admin namespace and the
	// page at /admin/.
	Admin AdminConfig `yaml:"admin"`
	// Debug holds switches for diagnosing a running chatd.
	Debug DebugConfig `yaml:"debug"`
}

// EventsConfig is the hooks.events.* section.
type EventsConfig struct {
	// URL is where batches of events are POSTed (http or https); empty
	// turns events off.
	URL string `yaml:"url" usage:"http(s) URL that batches of events are POSTed to; empty turns events off"`
	// Timeout bounds one POST, 100ms to 1m.
	Timeout time.Duration `yaml:"timeout" usage:"time limit of one POST of events, 100ms to 1m"`
	// RetryFor is how long an event is retried after it happened before it
	// is dropped, 1s to 24h.
	RetryFor time.Duration `yaml:"retry_for" usage:"how long an undelivered event is retried before it is dropped, 1s to 24h"`
	// BatchMax is the most events in one POST, 1 to 1000.
	BatchMax int `yaml:"batch_max" usage:"most events in one POST, 1 to 1000"`
	// BatchWait is how long events are gathered into a batch once the
	// first is there, 0s to 10s.
	BatchWait time.Duration `yaml:"batch_wait" usage:"how long events are gathered into one POST, 0s to 10s"`
	// QueueMax bounds the queued events (in memory, or the Redis stream in
	// cluster mode), 1 to 10,000,000; past it the oldest unsent events are
	// dropped and counted in chatd_events_dropped_total{reason="queue_full"}.
	QueueMax int `yaml:"queue_max" usage:"most events queued; past it the oldest unsent are dropped, 1 to 10000000"`
	// Types, when not empty, lists the only event types sent.
	Types []string `yaml:"types" usage:"event types to send, such as message.created,user.offline; empty sends all"`
}

// HTTPConfig is the http.* section.
type HTTPConfig struct {
	// TrustedProxies are the addresses or CIDRs of the proxies whose
	// X-Forwarded-For names the client (the shipped nginx, an Ingress
	// controller); from anyone else the header is ignored, and the client is
	// the address it connects from.
	TrustedProxies []string `yaml:"trusted_proxies" usage:"addresses or CIDRs of proxies whose X-Forwarded-For is believed, such as 10.0.0.0/8"`
	// IdleTimeout closes a keep-alive connection that sent no request for
	// that long.
	IdleTimeout time.Duration `yaml:"idle_timeout" usage:"how long an idle keep-alive HTTP connection stays open"`
	// HeaderTimeout bounds the reading of a request's headers.
	HeaderTimeout time.Duration `yaml:"header_timeout" usage:"time limit to read a request's headers"`
	// BodyTimeout bounds the reading of a request's body (a polling POST, an
	// API call); requests without a body, such as a long poll or a WebSocket,
	// are not bounded by it.
	BodyTimeout time.Duration `yaml:"body_timeout" usage:"time limit to read a request's body (long polls and WebSockets are not bounded by it)"`
	// MaxHeaderBytes bounds a request's headers, in bytes, 4 KiB to 1 MiB.
	MaxHeaderBytes int `yaml:"max_header_bytes" usage:"largest request headers in bytes, 4096 to 1048576"`
}

// LogConfig is the log.* section.
type LogConfig struct {
	// Level is the lowest level logged: debug, info, warn or error.
	Level string `yaml:"level" usage:"lowest level logged: debug, info, warn or error"`
	// Format is text (human readable) or json (one object per line).
	Format string `yaml:"format" usage:"log format: text or json"`
}

// RedisConfig is the redis.* section. Either URL (one Redis server) or Addrs
// (Sentinel when MasterName is set, Redis Cluster otherwise) may be set, not
// both; with neither, chatd runs as a single instance with in-memory state.
type RedisConfig struct {
	// URL is a redis:// or rediss:// URL of one Redis server.
	URL string `yaml:"url" usage:"redis:// or rediss:// URL; empty means a single instance with in-memory state"`
	// Addrs lists host:port addresses of Sentinels (with MasterName) or of
	// Redis Cluster nodes.
	Addrs []string `yaml:"addrs" usage:"host:port addresses of Redis Sentinels (with redis.master_name) or Redis Cluster nodes"`
	// MasterName is the Sentinel master name; it requires Addrs.
	MasterName string `yaml:"master_name" usage:"Sentinel master name; requires redis.addrs"`
	// Username is the Redis ACL user name used with Addrs.
	Username string `yaml:"username" usage:"Redis ACL user name"`
	// Password is the Redis password used with Addrs.
	Password string `yaml:"password" usage:"Redis password" secret:"true"`
	// Prefix starts every Redis key and channel, so deployments can share a
	// Redis: 1 to 64 characters of A-Z a-z 0-9 _ : . -
	Prefix string `yaml:"prefix" usage:"prefix of every Redis key and channel, so deployments can share a Redis"`
	// Timeout bounds each Redis command.
	Timeout time.Duration `yaml:"timeout" usage:"time limit of each Redis command"`
}

// AuthConfig is the auth.* section.
type AuthConfig struct {
	// Mode is dev (clients name themselves), jwt (clients present a JWT)
	// or hook (the connect hook, hooks.connect.url, says who they are).
	Mode string `yaml:"mode" usage:"dev (clients name themselves), jwt (clients present a JWT) or hook (the connect hook says who they are)"`
	// DevInsecure allows dev mode on a listen address other than loopback,
	// where anyone who can reach chatd can sign in as anyone. Only for
	// try-outs (docker compose, kubectl apply -k deploy/); ignored in jwt
	// mode.
	DevInsecure bool `yaml:"dev_insecure" usage:"allow dev mode on a non-loopback listen address, where anyone can sign in as anyone (try-outs only)"`
	// JWT holds the keys that verify tokens in jwt mode.
	JWT JWTConfig `yaml:"jwt"`
}

// JWTConfig is the auth.jwt.* section. Tokens signed with HS256 are checked
// with Secret, tokens signed with RS256 or ES256 with the key in
// PublicKeyFile; either or both may be set.
type JWTConfig struct {
	// Secret is the HS256 secret, at least 32 bytes.
	Secret string `yaml:"secret" usage:"HS256 secret, at least 32 bytes" secret:"true"`
	// PublicKeyFile is a PEM file with an RSA or EC public key (or a
	// certificate holding one) for RS256 or ES256 tokens.
	PublicKeyFile string `yaml:"public_key_file" usage:"PEM file with an RSA or EC public key for RS256 or ES256 tokens"`
	// RequireExp refuses tokens without an exp claim (connection tokens and
	// refreshes; join tokens always need one).
	RequireExp bool `yaml:"require_exp" usage:"refuse connection tokens without an exp claim"`
	// Audience lists the accepted aud values; a token must name one of
	// them. Empty accepts any aud, or none.
	Audience []string `yaml:"audience" usage:"accepted aud claim values; a token must name one (empty: aud is not checked)"`
	// Issuer is the required iss claim; empty does not check iss.
	Issuer string `yaml:"issuer" usage:"required iss claim (empty: iss is not checked)"`
	// Leeway is the clock difference allowed when exp, nbf and iat are
	// checked, 0 to 5 minutes.
	Leeway time.Duration `yaml:"leeway" usage:"clock difference allowed on exp, nbf and iat, 0s to 5m"`
}

// RoomsConfig is the rooms.* section.
type RoomsConfig struct {
	// Policies maps room-name patterns to a policy (open, granted, direct,
	// readonly), each written pattern=policy; the first pattern that
	// matches a room decides, and a room no pattern matches is open. In
	// a pattern, * matches any run of characters.
	Policies []string `yaml:"policies" usage:"pattern=policy pairs, first match wins, such as dm:*=direct,team-*=granted,news=readonly,*=open (policies: open, granted, direct, readonly)"`
}

// APIConfig is the api.* section.
type APIConfig struct {
	// Token is the bearer token of the server API; empty turns /api/v1 off.
	Token string `yaml:"token" usage:"bearer token of the server API; empty turns the API off" secret:"true"`
	// GatewayEvent is the event name under which a POST to @connections is
	// emitted to the socket.
	GatewayEvent string `yaml:"gateway_event" usage:"event name under which a POST to @connections/{socketId} reaches the socket"`
	// AWSAccessKeyID is the access key id of SigV4-signed @connections
	// requests; set together with AWSSecretAccessKey.
	AWSAccessKeyID string `yaml:"aws_access_key_id" usage:"AWS access key id accepted on SigV4-signed @connections requests"`
	// AWSSecretAccessKey is the secret key matching AWSAccessKeyID.
	AWSSecretAccessKey string `yaml:"aws_secret_access_key" usage:"AWS secret access key matching api.aws_access_key_id" secret:"true"`
	// Rate is the sustained number of API requests per second per token.
	Rate float64 `yaml:"rate" usage:"sustained API requests per second per token"`
	// Burst is the number of API requests a token may make at once.
	Burst int `yaml:"burst" usage:"API requests a token may make at once above the rate"`
}

// CORSConfig is the cors.* section.
type CORSConfig struct {
	// Origins are the browser origins (http(s)://host[:port]) allowed to
	// connect cross-origin; "*" allows any. Empty allows none.
	Origins []string `yaml:"origins" usage:"browser origins such as https://chat.example.com allowed cross-origin; * allows any"`
}

// HistoryConfig is the history.* section.
type HistoryConfig struct {
	// Size is the number of messages kept per room, 1 to 1,000,000.
	Size int `yaml:"size" usage:"messages kept per room, 1 to 1000000"`
	// TTL is how long a room's history is kept after its last message, in
	// memory and in Redis; 0 keeps it forever.
	TTL time.Duration `yaml:"ttl" usage:"how long a room's history is kept after its last message; 0 keeps it forever"`
}

// LimitsConfig is the limits.* section.
type LimitsConfig struct {
	// MessageBytes is the largest message text in bytes, 1 to 1 MiB.
	MessageBytes int `yaml:"message_bytes" usage:"largest message text in bytes, 1 to 1048576"`
	// PayloadBytes is the largest socket.io packet in bytes, 1 KiB to 10 MiB,
	// and at least MessageBytes+1024.
	PayloadBytes int `yaml:"payload_bytes" usage:"largest socket.io packet in bytes, 1024 to 10485760 and at least limits.message_bytes+1024"`
	// RoomsPerUser is the number of rooms one user may belong to.
	RoomsPerUser int `yaml:"rooms_per_user" usage:"rooms one user may belong to, 1 to 100000"`
	// EventsPerSecond is the sustained event rate of one socket, in events per
	// second.
	EventsPerSecond float64 `yaml:"events_per_second" usage:"sustained events per second of one socket"`
	// EventBurst is the number of events a socket may send at once above
	// EventsPerSecond.
	EventBurst int `yaml:"event_burst" usage:"events a socket may send at once above the rate"`
	// RateStrikes is the number of rate_limited answers within 10 seconds
	// after which the socket is disconnected.
	RateStrikes int `yaml:"rate_strikes" usage:"rate_limited answers within 10s after which the socket is disconnected"`
	// SendBufferBytes bounds what chatd queues for one WebSocket client that
	// reads slower than it is sent to, in bytes, 64 KiB to 1 GiB; a client
	// that would go past it is disconnected and catches up when it
	// reconnects.
	SendBufferBytes int `yaml:"send_buffer_bytes" usage:"bytes queued for a slow WebSocket client before it is disconnected, 65536 to 1073741824"`
	// SocketsPerUser bounds the sockets one user may have on one instance;
	// 0 turns the limit off.
	SocketsPerUser int `yaml:"sockets_per_user" usage:"sockets one user may have open on one instance; 0 turns the limit off"`
	// ConnectionsPerAddress bounds the sockets from one client address (see
	// http.trusted_proxies) on one instance; 0 turns the limit off.
	ConnectionsPerAddress int `yaml:"connections_per_address" usage:"sockets one client address may have open on one instance; 0 turns the limit off"`
	// HandshakesPerSecond bounds the new connections one client address may
	// start per second (twice as many at once); 0 turns the limit off.
	HandshakesPerSecond float64 `yaml:"handshakes_per_second" usage:"new connections one client address may start per second; 0 turns the limit off"`
	// Connections bounds the connections of one instance; a client past it
	// gets 503 and tries again (another instance, behind a load balancer).
	// 0 turns the limit off.
	Connections int `yaml:"connections" usage:"connections one instance accepts; 0 turns the limit off"`
	// UserEventsPerSecond is the sustained event rate of one user over all
	// its sockets on one instance, in events per second; 0 turns it off.
	UserEventsPerSecond float64 `yaml:"user_events_per_second" usage:"sustained events per second of one user over all its sockets on one instance; 0 turns it off"`
	// UserEventBurst is the number of events one user may send at once over
	// all its sockets, above UserEventsPerSecond.
	UserEventBurst int `yaml:"user_event_burst" usage:"events one user may send at once over all its sockets, above limits.user_events_per_second"`
}

// ShutdownConfig is the shutdown.* section.
type ShutdownConfig struct {
	// Timeout bounds the whole drain on SIGTERM.
	Timeout time.Duration `yaml:"timeout" usage:"how long the whole drain on SIGTERM may take"`
	// Drain is the window over which sockets are disconnected in batches;
	// 0 disconnects them all at once. Less than Timeout; when left at its
	// default and Timeout is 10s or less, it is a third of Timeout.
	Drain time.Duration `yaml:"drain" usage:"window over which sockets are disconnected in batches; 0 disconnects all at once"`
}

// RecoveryConfig is the recovery.* section.
type RecoveryConfig struct {
	// MaxDisconnection is how long socket.io connection state recovery keeps
	// a dropped socket's session and missed events; 0 turns recovery off.
	MaxDisconnection time.Duration `yaml:"max_disconnection" usage:"how long a dropped socket's session and missed events are kept for recovery; 0 turns recovery off"`
	// MaxPackets is the largest number of missed packets a restore replays;
	// a socket that missed more gets a fresh connection.
	MaxPackets int `yaml:"max_packets" usage:"most missed packets a recovery replays; more means a fresh connection"`
	// StreamLength caps the recorded packets: the recovery stream in Redis,
	// or the buffer in memory on a single instance, in entries.
	StreamLength int `yaml:"stream_length" usage:"length cap of the recorded packets (the Redis recovery stream, or the in-memory buffer), at least 100"`
}

// PresenceConfig is the presence.* section.
type PresenceConfig struct {
	// TTL is how long an instance's presence entry lives without renewal:
	// the users of a crashed instance go offline within it. 3s to 60s.
	TTL time.Duration `yaml:"ttl" usage:"lifetime of an instance's presence entry without renewal (users of a crashed instance go offline within it), 3s to 60s"`
}

// InstanceConfig is the instance.* section.
type InstanceConfig struct {
	// ID names this instance in logs, metrics and Redis. Load fills an empty
	// ID with the host name, "-" and 6 random hex digits.
	ID string `yaml:"id" usage:"name of this instance in logs, metrics and Redis; empty means host name plus 6 random hex digits"`
}

// MemoryConfig is the memory.* section.
type MemoryConfig struct {
	// ReleaseWhenIdle returns the Go heap's free memory to the operating
	// system when chatd goes quiet after a busy spell (a connection burst),
	// instead of holding it until the runtime's own, much later, collection.
	ReleaseWhenIdle bool `yaml:"release_when_idle" usage:"give the heap's free memory back to the system when chatd goes quiet after a busy spell"`
	// BurstGCPercent is the lowest garbage collector target (GOGC) while
	// connections arrive in a burst, so that their long-lived state packs
	// into fewer pages; 0 keeps the collector's target as it is.
	BurstGCPercent int `yaml:"burst_gc_percent" usage:"lowest garbage collector target (GOGC) while connections arrive in a burst, so that they take less memory once idle; 0 turns this off"`
}

// MetricsConfig is the metrics.* section.
type MetricsConfig struct {
	// Enabled serves Prometheus metrics at /metrics.
	Enabled bool `yaml:"enabled" usage:"serve Prometheus metrics at /metrics"`
	// Listen, when set, serves /metrics on this host:port of its own instead
	// of on listen, so that it need not be public.
	Listen string `yaml:"listen" usage:"host:port of a separate listener for /metrics; empty serves it on listen"`
}

// WebConfig is the web.* section.
type WebConfig struct {
	// Enabled serves the browser client at /.
	Enabled bool `yaml:"enabled" usage:"serve the browser client at /"`
}

// AdminConfig is the admin.* section. The Admin UI is off until both
// Username and PasswordHash are set.
type AdminConfig struct {
	// Username is the name the Admin UI logs in with.
	Username string `yaml:"username" usage:"user name of the socket.io Admin UI; with admin.password_hash it turns the UI on"`
	// PasswordHash is the bcrypt hash (cost 10 or more) of the Admin UI's
	// password, as `chatd hash-password` prints it; a plain password is
	// refused.
	PasswordHash string `yaml:"password_hash" secret:"true" usage:"bcrypt hash (cost >= 10) of the Admin UI password; make it with chatd hash-password"`
	// ReadOnly lets the Admin UI watch but not join, leave or disconnect.
	ReadOnly bool `yaml:"readonly" usage:"the Admin UI may watch but not join, leave or disconnect sockets"`
	// SessionTTL is how long an Admin UI login lasts before the password is
	// asked again.
	SessionTTL time.Duration `yaml:"session_ttl" usage:"how long an Admin UI login lasts"`
}

// Enabled reports whether the Admin UI is on: a user name and a password
// hash are set.
func (c AdminConfig) Enabled() bool { return c.Username != "" && c.PasswordHash != "" }

// DebugConfig is the debug.* section.
type DebugConfig struct {
	// Pprof serves Go's profiling endpoints at /debug/pprof/. They reveal
	// internals and cost CPU while a profile runs: keep it off on a public
	// listener.
	Pprof bool `yaml:"pprof" usage:"serve Go's profiling endpoints at /debug/pprof/ (keep off on public listeners)"`
}

// Default returns chatd's defaults: a single instance in dev auth mode on
// 127.0.0.1:3000. It is valid.
func Default() Config {
	return Config{
		Listen: defaultDevListen,
		Log:    LogConfig{Level: "info", Format: "text"},
		Redis:  RedisConfig{Prefix: "chatd", Timeout: 2 * time.Second},
		Auth:   AuthConfig{Mode: "dev"},
		API:    APIConfig{GatewayEvent: "push", Rate: 100, Burst: 200},
		History: HistoryConfig{
			Size: 1000,
			TTL:  7 * 24 * time.Hour,
		},
		Limits: LimitsConfig{
			MessageBytes:    rooms.DefaultMessageBytes,
			PayloadBytes:    protocol.DefaultPayloadBytes,
			RoomsPerUser:    100,
			EventsPerSecond: 20,
			EventBurst:      40,
			RateStrikes:     20,
			SendBufferBytes: 1 << 20,

			SocketsPerUser:        16,
			ConnectionsPerAddress: 500,
			HandshakesPerSecond:   50,
			Connections:           50_000,
			UserEventsPerSecond:   40,
			UserEventBurst:        100,
		},
		Shutdown: ShutdownConfig{Timeout: 30 * time.Second, Drain: 10 * time.Second},
		Recovery: RecoveryConfig{
			MaxDisconnection: 2 * time.Minute,
			MaxPackets:       protocol.DefaultRecoveryMaxPackets,
			StreamLength:     protocol.DefaultRecoveryBufferLength,
		},
		Presence: PresenceConfig{TTL: 30 * time.Second},
		Hooks: HooksConfig{
			Timeout: time.Second,
			Headers: DefaultHookHeaders(),
			Connect: HookConfig{OnError: HookRefuse},
			Join:    HookConfig{OnError: HookRefuse},
			Message: HookConfig{OnError: HookRefuse},
			Events: EventsConfig{
				Timeout:   5 * time.Second,
				RetryFor:  10 * time.Minute,
				BatchMax:  100,
				BatchWait: 100 * time.Millisecond,
				QueueMax:  100_000,
			},
		},
		Memory:  MemoryConfig{ReleaseWhenIdle: true, BurstGCPercent: 25},
		Metrics: MetricsConfig{Enabled: true},
		Web:     WebConfig{Enabled: true},
		Admin:   AdminConfig{SessionTTL: 12 * time.Hour},
		HTTP: HTTPConfig{
			IdleTimeout:    60 * time.Second,
			HeaderTimeout:  10 * time.Second,
			BodyTimeout:    15 * time.Second,
			MaxHeaderBytes: 32 << 10,
		},
	}
}

// Default listen addresses: dev mode stays on loopback, jwt mode (where
// clients must prove who they are) listens on every interface.
const (
	defaultDevListen = "127.0.0.1:3000"
	defaultJWTListen = ":3000"
)

// SlogLevel returns Level as a slog.Level; an unknown level (which Validate
// refuses) is slog.LevelInfo.
func (c LogConfig) SlogLevel() slog.Level {
	switch c.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// ParsedPolicies returns Policies as the rules package rooms applies; its
// error says which pair is wrong and what would be valid.
func (c RoomsConfig) ParsedPolicies() (*rooms.Policies, error) {
	return rooms.ParsePolicies(c.Policies)
}

// PublicKey reads PublicKeyFile and returns its *rsa.PublicKey or
// *ecdsa.PublicKey; it returns nil, nil when PublicKeyFile is empty.
func (c JWTConfig) PublicKey() (crypto.PublicKey, error) {
	if c.PublicKeyFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(c.PublicKeyFile) //nolint:gosec // the operator names this file
	if err != nil {
		return nil, err
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(data); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(data); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%q holds no RSA or EC public key in PEM form", c.PublicKeyFile)
}
