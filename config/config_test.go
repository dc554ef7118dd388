package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env is a getenv that sees only m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to a new file in a temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// errorList splits an errors.Join result into its messages.
func errorList(err error) []string {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, errorList(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func TestDefaultIsValid(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestLoadWithNothingGivesDefaults(t *testing.T) {
	cfg, err := Load(nil, env(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_.-]+-[0-9a-f]{6}$`).MatchString(cfg.Instance.ID) {
		t.Errorf("instance.id = %q, want host name, '-' and 6 hex digits", cfg.Instance.ID)
	}
	want := Default()
	want.Instance.ID = cfg.Instance.ID
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("Load(nil) = %+v\nwant Default() %+v", *cfg, want)
	}
	other, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if other.Instance.ID == cfg.Instance.ID {
		t.Errorf("two loads generated the same instance.id %q", cfg.Instance.ID)
	}
	if _, err := Load(nil, nil); err != nil {
		t.Errorf("Load with a nil getenv: %v", err)
	}
}

func TestNames(t *testing.T) {
	// The names of the contract (chat-protocol.md, server-api.md) and of the
	// brief.
	tests := []struct{ key, env, flag string }{
		{"listen", "CHATD_LISTEN", "listen"},
		{"redis.url", "CHATD_REDIS_URL", "redis-url"},
		{"redis.prefix", "CHATD_REDIS_PREFIX", "redis-prefix"},
		{"redis.master_name", "CHATD_REDIS_MASTER_NAME", "redis-master-name"},
		{"auth.mode", "CHATD_AUTH_MODE", "auth-mode"},
		{"auth.jwt.secret", "CHATD_AUTH_JWT_SECRET", "auth-jwt-secret"},
		{"auth.jwt.public_key_file", "CHATD_AUTH_JWT_PUBLIC_KEY_FILE", "auth-jwt-public-key-file"},
		{"api.token", "CHATD_API_TOKEN", "api-token"},
		{"api.aws_access_key_id", "CHATD_API_AWS_ACCESS_KEY_ID", "api-aws-access-key-id"},
		{"api.aws_secret_access_key", "CHATD_API_AWS_SECRET_ACCESS_KEY", "api-aws-secret-access-key"},
		{"history.size", "CHATD_HISTORY_SIZE", "history-size"},
		{"limits.message_bytes", "CHATD_LIMITS_MESSAGE_BYTES", "limits-message-bytes"},
		{"shutdown.timeout", "CHATD_SHUTDOWN_TIMEOUT", "shutdown-timeout"},
		{"recovery.max_disconnection", "CHATD_RECOVERY_MAX_DISCONNECTION", "recovery-max-disconnection"},
	}
	for _, tt := range tests {
		f := fieldByKey[tt.key]
		if f == nil {
			t.Errorf("no setting %q", tt.key)
			continue
		}
		if f.env != tt.env || f.flag != tt.flag {
			t.Errorf("%s: env %s flag %s, want %s and %s", tt.key, f.env, f.flag, tt.env, tt.flag)
		}
	}
	if len(fieldByEnv) != len(fields) || len(fieldByFlag) != len(fields) || len(fieldByKey) != len(fields) {
		t.Errorf("names collide: %d settings, %d keys, %d variables, %d flags",
			len(fields), len(fieldByKey), len(fieldByEnv), len(fieldByFlag))
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "chatd.yaml", "history:\n  size: 11\n")
	withFile := []string{"--config", file}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, 1000},
		{"file over default", withFile, nil, 11},
		{"env over default", nil, map[string]string{"CHATD_HISTORY_SIZE": "22"}, 22},
		{"env over file", withFile, map[string]string{"CHATD_HISTORY_SIZE": "22"}, 22},
		{"empty env is unset", withFile, map[string]string{"CHATD_HISTORY_SIZE": ""}, 11},
		{"flag over file", append(withFile, "--history-size=33"), nil, 33},
		{"flag over env and file", append(withFile, "--history-size", "33"), map[string]string{"CHATD_HISTORY_SIZE": "22"}, 33},
		{"file from CHATD_CONFIG", nil, map[string]string{"CHATD_CONFIG": file}, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.History.Size != tt.want {
				t.Errorf("history.size = %d, want %d", cfg.History.Size, tt.want)
			}
		})
	}
}

func TestLoadParsesEveryKind(t *testing.T) {
	file := writeFile(t, "chatd.yaml", `
listen: 127.0.0.1:4000
redis:
  addrs: [redis-0:26379, "redis-1:26379"]
  master_name: mymaster
  timeout: 500ms
shutdown.drain: 0          # dotted keys work too
limits:
  events_per_second: 2.5
  event_burst: 1e3
metrics:
  enabled: false
recovery:
  max_disconnection: 0
`)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*Config) bool
	}{
		{"file", []string{"--config", file}, nil, func(c *Config) bool {
			return c.Listen == "127.0.0.1:4000" &&
				reflect.DeepEqual(c.Redis.Addrs, []string{"redis-0:26379", "redis-1:26379"}) &&
				c.Redis.MasterName == "mymaster" && c.Redis.Timeout == 500*time.Millisecond &&
				c.Shutdown.Drain == 0 && c.Limits.EventsPerSecond == 2.5 && c.Limits.EventBurst == 1000 &&
				!c.Metrics.Enabled && c.Recovery.MaxDisconnection == 0
		}},
		{"env", nil, map[string]string{
			"CHATD_CORS_ORIGINS":               "https://a.example, http://localhost:8080,",
			"CHATD_SHUTDOWN_TIMEOUT":           "1m30s",
			"CHATD_API_RATE":                   "0.5",
			"CHATD_WEB_ENABLED":                "false",
			"CHATD_AUTH_MODE":                  "jwt",
			"CHATD_AUTH_JWT_SECRET":            strings.Repeat("s", 32),
			"CHATD_INSTANCE_ID":                "chatd-0",
			"CHATD_RECOVERY_MAX_DISCONNECTION": "0",
			"CHATD_MEMORY_RELEASE_WHEN_IDLE":   "false",
		}, func(c *Config) bool {
			return reflect.DeepEqual(c.CORS.Origins, []string{"https://a.example", "http://localhost:8080"}) &&
				c.Shutdown.Timeout == 90*time.Second && c.API.Rate == 0.5 && !c.Web.Enabled && !c.Memory.ReleaseWhenIdle &&
				c.Auth.Mode == "jwt" && c.Instance.ID == "chatd-0" && c.Recovery.MaxDisconnection == 0
		}},
		{"flags", []string{
			"--cors-origins", "https://a.example", "--cors-origins=https://b.example,*",
			"--metrics-enabled=false", "--web-enabled", "--presence-ttl=3s", "--limits-events-per-second=7.5",
		}, map[string]string{"CHATD_WEB_ENABLED": "false"}, func(c *Config) bool {
			return reflect.DeepEqual(c.CORS.Origins, []string{"https://a.example", "https://b.example", "*"}) &&
				!c.Metrics.Enabled && c.Web.Enabled && c.Presence.TTL == 3*time.Second &&
				c.Limits.EventsPerSecond == 7.5
		}},
		{"empty flag list overrides env", []string{"--cors-origins="}, map[string]string{"CHATD_CORS_ORIGINS": "*"},
			func(c *Config) bool { return len(c.CORS.Origins) == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.args, env(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("unexpected config %+v", *cfg)
			}
		})
	}
}

// loadError runs Load and returns its error, failing the test when there is
// none.
func loadError(t *testing.T, args []string, getenv func(string) string) string {
	t.Helper()
	cfg, err := Load(args, getenv)
	if err == nil {
		t.Fatalf("Load(%q) = %+v, want an error", args, cfg)
	}
	if cfg != nil {
		t.Errorf("Load returned a config with its error")
	}
	return err.Error()
}

func TestLoadTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string // the whole error starts with it
	}{
		{"int from env", nil, map[string]string{"CHATD_HISTORY_SIZE": "abc"}, "",
			`history.size: "abc" is not a whole number (CHATD_HISTORY_SIZE)`},
		{"int from flag", []string{"--history-size=1.5"}, nil, "",
			`history.size: "1.5" is not a whole number (flag --history-size)`},
		{"int from file", nil, nil, "history:\n  size: lots\n",
			`history.size: "lots" is not a whole number (config file`},
		{"int too large", nil, map[string]string{"CHATD_HISTORY_SIZE": "99999999999999999999"}, "",
			`history.size: "99999999999999999999" is too large`},
		{"duration from flag", []string{"--shutdown-timeout", "5 minutes"}, nil, "",
			`shutdown.timeout: "5 minutes" is not a duration such as "30s" (flag --shutdown-timeout)`},
		{"duration from env", nil, map[string]string{"CHATD_PRESENCE_TTL": "30"}, "",
			`presence.ttl: "30" is not a duration such as "30s" (CHATD_PRESENCE_TTL)`},
		{"duration as a YAML number", nil, nil, "redis:\n  timeout: 30\n",
			`redis.timeout: 30 is not a duration such as "30s"`},
		{"float", nil, map[string]string{"CHATD_API_RATE": "fast"}, "",
			`api.rate: "fast" is not a number`},
		{"float NaN", []string{"--api-rate=NaN"}, nil, "",
			`api.rate: "NaN" is not a number`},
		{"bool from env", nil, map[string]string{"CHATD_METRICS_ENABLED": "maybe"}, "",
			`metrics.enabled: "maybe" is not true or false (CHATD_METRICS_ENABLED)`},
		{"bool from file", nil, nil, "web:\n  enabled: 3\n",
			`web.enabled: 3 is not true or false`},
		{"memory bool from a flag", []string{"--memory-release-when-idle=sometimes"}, nil, "",
			`memory.release_when_idle: "sometimes" is not true or false (flag --memory-release-when-idle)`},
		{"memory int from the environment", nil, map[string]string{"CHATD_MEMORY_BURST_GC_PERCENT": "25%"}, "",
			`memory.burst_gc_percent: "25%" is not a whole number (CHATD_MEMORY_BURST_GC_PERCENT)`},
		{"string given a YAML number", nil, nil, "api:\n  token: 12345\n",
			`api.token: 12345 is not a string; quote it`},
		{"list item not a string", nil, nil, "cors:\n  origins: [1]\n",
			`cors.origins: list item 1 is not a string`},
		{"mapping for a value", nil, nil, "history:\n  size: {a: 1}\n",
			`history.size: a mapping is not a whole number`},
		{"section given a value", nil, nil, "redis: localhost\n",
			`config file "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, "chatd.yaml", tt.file)}, args...)
			}
			got := loadError(t, args, env(tt.env))
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("error %q\ndoes not start with %q", got, tt.want)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		path := writeFile(t, "chatd.yaml", "history:\n  size: 5\nhistroy.size: 5\nlimits:\n  message_byte: 10\nredis:\n  urls: x\n")
		got := loadError(t, []string{"--config", path}, env(nil))
		for _, want := range []string{
			`config file "` + path + `": line 3: unknown key "histroy.size" (did you mean history.size?)`,
			`line 5: unknown key "limits.message_byte" (did you mean limits.message_bytes?)`,
			`line 7: unknown key "redis.urls" (did you mean redis.url?)`,
		} {
			if !strings.Contains(got, want) {
				t.Errorf("error %q\ndoes not contain %q", got, want)
			}
		}
	})
	t.Run("section", func(t *testing.T) {
		got := loadError(t, []string{"--config", writeFile(t, "c.yaml", "histroy:\n  size: 5\n")}, env(nil))
		if !strings.Contains(got, `unknown key "histroy" (did you mean history?)`) {
			t.Errorf("error %q does not name the key", got)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("CHATD_HISTROY_SIZE", "5")
		got := loadError(t, nil, os.Getenv)
		want := "environment: unknown variable CHATD_HISTROY_SIZE (did you mean CHATD_HISTORY_SIZE?)"
		if got != want {
			t.Errorf("error %q, want %q", got, want)
		}
	})
	t.Run("env hidden by getenv", func(t *testing.T) {
		t.Setenv("CHATD_HISTROY_SIZE", "5")
		if _, err := Load(nil, env(nil)); err != nil {
			t.Errorf("Load with a getenv that hides the variable: %v", err)
		}
	})
	t.Run("flag", func(t *testing.T) {
		got := loadError(t, []string{"--histroy-size=5"}, env(nil))
		want := "flags: unknown flag --histroy-size (did you mean --history-size?)"
		if got != want {
			t.Errorf("error %q, want %q", got, want)
		}
	})
	t.Run("shorthand flag", func(t *testing.T) {
		got := loadError(t, []string{"-x"}, env(nil))
		if !strings.HasPrefix(got, "flags: unknown shorthand flag") {
			t.Errorf("error %q", got)
		}
	})
	t.Run("positional argument", func(t *testing.T) {
		got := loadError(t, []string{"--web-enabled", "false"}, env(nil))
		if !strings.HasPrefix(got, `flags: unexpected argument "false"`) {
			t.Errorf("error %q", got)
		}
	})
}

func TestConfigFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name, path, want string
	}{
		{"missing", missing, `config file "` + missing + `": no such file or directory`},
		{"bad YAML", writeFile(t, "bad.yaml", "history:\n  size: [1\n"), `config file "`},
		{"top level list", writeFile(t, "list.yaml", "- a\n- b\n"), `": line 1: expected a mapping of keys`},
		{"duplicate via dotted key", writeFile(t, "dup.yaml", "history:\n  size: 1\nhistory.size: 2\n"), `line 3: key "history.size" is set twice (also on line 2)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadError(t, []string{"--config=" + tt.path}, env(nil))
			if !strings.Contains(got, tt.want) || !strings.Contains(got, tt.path) {
				t.Errorf("error %q\nwant it to name %q and contain %q", got, tt.path, tt.want)
			}
		})
	}
	t.Run("empty file is no settings", func(t *testing.T) {
		for _, content := range []string{"", "# nothing\n", "~\n", "redis:\n"} {
			if _, err := Load([]string{"--config", writeFile(t, "e.yaml", content)}, env(nil)); err != nil {
				t.Errorf("file %q: %v", content, err)
			}
		}
	})
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		cfg, err := Load([]string{arg}, env(nil))
		if !errors.Is(err, ErrHelp) || cfg != nil {
			t.Errorf("Load(%s) = %v, %v; want nil, ErrHelp", arg, cfg, err)
		}
	}
	usage := Usage()
	for _, f := range fields {
		if !strings.Contains(usage, "--"+f.flag+" ") || !strings.Contains(usage, f.env) {
			t.Errorf("usage does not show --%s and %s", f.flag, f.env)
		}
	}
	if !strings.Contains(usage, "--config") {
		t.Error("usage does not show --config")
	}
}

// pemFile writes a PEM block of the given type and bytes and returns its path.
func pemFile(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func TestValidate(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPath, ecPath := pemFile(t, "PUBLIC KEY", rsaDER), pemFile(t, "PUBLIC KEY", ecDER)
	garbagePath := writeFile(t, "garbage.pem", "not a key\n")
	missingPath := filepath.Join(t.TempDir(), "missing.pem")
	secret := strings.Repeat("k", 32)

	tests := []struct {
		name   string
		change func(c *Config)
		key    string // "" means valid; else every error starts with key + ": "
		want   string // and the message contains this
	}{
		{"listen without port", func(c *Config) { c.Listen = "3000" }, "listen", `"3000" is not host:port`},
		{"listen port too large", func(c *Config) { c.Listen = ":99999" }, "listen", "0 to 65535"},
		{"listen named port", func(c *Config) { c.Listen = "localhost:http" }, "listen", "0 to 65535"},
		{"listen port 0", func(c *Config) { c.Listen = "127.0.0.1:0" }, "", ""},
		{"listen IPv6", func(c *Config) { c.Listen = "[::1]:3000" }, "", ""},

		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level", "debug, info, warn, error"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", "text or json"},

		{"redis url scheme", func(c *Config) { c.Redis.URL = "http://redis:6379" }, "redis.url", `scheme "http" is not redis or rediss`},
		{"redis url database", func(c *Config) { c.Redis.URL = "redis://:hunter2@redis:6379/abc" }, "redis.url", "invalid database number"},
		{"redis url unparsable", func(c *Config) { c.Redis.URL = "redis://:hunter2@redis:port" }, "redis.url", "is not a URL"},
		{"redis url unknown option", func(c *Config) { c.Redis.URL = "redis://redis:6379?bogus=1" }, "redis.url", "bogus"},
		{"redis url", func(c *Config) { c.Redis.URL = "rediss://user:pw@redis.example:6380/2?dial_timeout=3s" }, "", ""},
		{"redis url and addrs", func(c *Config) { c.Redis.URL = "redis://r:6379"; c.Redis.Addrs = []string{"a:1"} }, "redis.addrs", "cannot be set together with redis.url"},
		{"redis addr without port", func(c *Config) { c.Redis.Addrs = []string{"a:1", "redis-0"} }, "redis.addrs", `"redis-0" is not host:port`},
		{"redis addr without host", func(c *Config) { c.Redis.Addrs = []string{":6379"} }, "redis.addrs", `":6379" is not host:port`},
		{"redis master without addrs", func(c *Config) { c.Redis.MasterName = "mymaster" }, "redis.master_name", "requires redis.addrs"},
		{"redis sentinel", func(c *Config) { c.Redis.MasterName = "m"; c.Redis.Addrs = []string{"s0:26379", "s1:26379"} }, "", ""},
		{"redis prefix empty", func(c *Config) { c.Redis.Prefix = "" }, "redis.prefix", "1 to 64 characters"},
		{"redis prefix space", func(c *Config) { c.Redis.Prefix = "my chat" }, "redis.prefix", "1 to 64 characters"},
		{"redis prefix too long", func(c *Config) { c.Redis.Prefix = strings.Repeat("p", 65) }, "redis.prefix", "1 to 64 characters"},
		{"redis prefix allowed characters", func(c *Config) { c.Redis.Prefix = "a-Z_0.9:x" }, "", ""},
		{"redis timeout", func(c *Config) { c.Redis.Timeout = 0 }, "redis.timeout", "more than 0"},

		{"auth mode", func(c *Config) { c.Auth.Mode = "oauth" }, "auth.mode", `"oauth" is not dev, jwt or hook`},
		{"jwt without keys", func(c *Config) { c.Auth.Mode = "jwt" }, "auth.jwt.secret", `required when auth.mode is "jwt"`},
		{"jwt short secret", func(c *Config) { c.Auth.Mode = "jwt"; c.Auth.JWT.Secret = "short" }, "auth.jwt.secret", "must be at least 32 bytes"},
		{"jwt secret", func(c *Config) { c.Auth.Mode = "jwt"; c.Auth.JWT.Secret = secret }, "", ""},
		{"jwt RSA key", func(c *Config) { c.Auth.Mode = "jwt"; c.Auth.JWT.PublicKeyFile = rsaPath }, "", ""},
		{"jwt EC key", func(c *Config) { c.Auth.Mode = "jwt"; c.Auth.JWT.PublicKeyFile = ecPath }, "", ""},
		{"jwt key file missing", func(c *Config) { c.Auth.Mode = "jwt"; c.Auth.JWT.PublicKeyFile = missingPath }, "auth.jwt.public_key_file", "no such file"},
		{"jwt key file not a key", func(c *Config) { c.Auth.Mode = "jwt"; c.Auth.JWT.PublicKeyFile = garbagePath }, "auth.jwt.public_key_file", "holds no RSA or EC public key"},
		{"jwt leeway negative", func(c *Config) { c.Auth.JWT.Leeway = -time.Second }, "auth.jwt.leeway", "from 0s to 5m"},
		{"jwt leeway too long", func(c *Config) { c.Auth.JWT.Leeway = time.Hour }, "auth.jwt.leeway", "from 0s to 5m, not 1h"},
		{"jwt audience empty value", func(c *Config) { c.Auth.JWT.Audience = []string{" "} }, "auth.jwt.audience", "must not hold an empty value"},
		{"jwt claims checks", func(c *Config) {
			c.Auth.Mode = "jwt"
			c.Auth.JWT.Secret = secret
			c.Auth.JWT.RequireExp = true
			c.Auth.JWT.Audience = []string{"chatd"}
			c.Auth.JWT.Issuer = "https://auth.example"
			c.Auth.JWT.Leeway = 5 * time.Second
		}, "", ""},

		{"dev mode on every interface", func(c *Config) { c.Listen = ":3000" }, "auth.mode", `"dev" lets anyone sign in as anyone, so it is allowed only on a loopback listen address, and listen is ":3000"`},
		{"dev mode on 0.0.0.0", func(c *Config) { c.Listen = "0.0.0.0:3000" }, "auth.mode", "set auth.dev_insecure: true"},
		{"dev mode on a host name", func(c *Config) { c.Listen = "chat.example:3000" }, "auth.mode", "listen on 127.0.0.1"},
		{"dev mode on localhost", func(c *Config) { c.Listen = "localhost:3000" }, "", ""},
		{"dev mode on ::1", func(c *Config) { c.Listen = "[::1]:0" }, "", ""},
		{"dev mode on 127.0.0.2", func(c *Config) { c.Listen = "127.0.0.2:3000" }, "", ""},
		{"dev mode insecure", func(c *Config) { c.Listen = ":3000"; c.Auth.DevInsecure = true }, "", ""},
		{"jwt mode on every interface", func(c *Config) { c.Listen = ":3000"; c.Auth.Mode = "jwt"; c.Auth.JWT.Secret = secret }, "", ""},
		{"dev mode with a secret", func(c *Config) { c.Auth.JWT.Secret = secret }, "auth.jwt.secret", `is set while auth.mode is "dev"`},
		{"dev mode with a key file", func(c *Config) { c.Auth.JWT.PublicKeyFile = rsaPath }, "auth.jwt.public_key_file", `is set while auth.mode is "dev", which checks no tokens; set auth.mode: jwt`},

		{"policies", func(c *Config) {
			c.Rooms.Policies = []string{"dm:*=direct", "team-*=granted", "news=readonly", "*=open"}
		}, "", ""},
		{"policies without =", func(c *Config) { c.Rooms.Policies = []string{"dm:*"} }, "rooms.policies", `"dm:*" is not pattern=policy`},
		{"policies unknown policy", func(c *Config) { c.Rooms.Policies = []string{"x=private"} }, "rooms.policies", `policy "private" of pattern "x" is not one of open, granted, direct, readonly`},
		{"policies bad pattern", func(c *Config) { c.Rooms.Policies = []string{"a b=open"} }, "rooms.policies", `pattern "a b": a room pattern may only contain`},
		{"policies direct not a prefix", func(c *Config) { c.Rooms.Policies = []string{"*:dm=direct"} }, "rooms.policies", "a direct pattern must be a prefix followed by one *"},

		{"gateway event empty", func(c *Config) { c.API.GatewayEvent = "" }, "api.gateway_event", "must not be empty"},
		{"gateway event protocol", func(c *Config) { c.API.GatewayEvent = "message" }, "api.gateway_event", "reserved"},
		{"gateway event socket.io", func(c *Config) { c.API.GatewayEvent = "disconnect" }, "api.gateway_event", "reserved"},
		{"aws id only", func(c *Config) { c.API.AWSAccessKeyID = "AKID" }, "api.aws_secret_access_key", "required when api.aws_access_key_id is set"},
		{"aws secret only", func(c *Config) { c.API.AWSSecretAccessKey = "s" }, "api.aws_access_key_id", "required when api.aws_secret_access_key is set"},
		{"aws both", func(c *Config) { c.API.AWSAccessKeyID = "AKID"; c.API.AWSSecretAccessKey = "s" }, "", ""},
		{"api rate zero", func(c *Config) { c.API.Rate = 0 }, "api.rate", "more than 0"},
		{"api rate NaN", func(c *Config) { c.API.Rate = math.NaN() }, "api.rate", "more than 0"},
		{"api burst", func(c *Config) { c.API.Burst = 0 }, "api.burst", "at least 1"},

		{"cors path", func(c *Config) { c.CORS.Origins = []string{"https://a.example/"} }, "cors.origins", `"https://a.example/" must be * or an origin`},
		{"cors scheme", func(c *Config) { c.CORS.Origins = []string{"ftp://a.example"} }, "cors.origins", "must be * or an origin"},
		{"cors bare host", func(c *Config) { c.CORS.Origins = []string{"a.example"} }, "cors.origins", "must be * or an origin"},
		{"cors bad port", func(c *Config) { c.CORS.Origins = []string{"http://a.example:0"} }, "cors.origins", "must be * or an origin"},
		{"cors origins", func(c *Config) { c.CORS.Origins = []string{"*", "http://localhost:8080", "https://a.example"} }, "", ""},

		{"history too small", func(c *Config) { c.History.Size = 0 }, "history.size", "from 1 to 1000000, not 0"},
		{"history too large", func(c *Config) { c.History.Size = 1_000_001 }, "history.size", "from 1 to 1000000"},
		{"burst collector target negative", func(c *Config) { c.Memory.BurstGCPercent = -5 }, "memory.burst_gc_percent", "from 0 to 100, not -5"},
		{"burst collector target above the default GOGC", func(c *Config) { c.Memory.BurstGCPercent = 150 }, "memory.burst_gc_percent", "from 0 to 100, not 150"},
		{"burst collector target off", func(c *Config) { c.Memory.BurstGCPercent = 0 }, "", ""},

		{"message bytes", func(c *Config) { c.Limits.MessageBytes = 0 }, "limits.message_bytes", "from 1 to 1048576"},
		{"payload bytes too small", func(c *Config) { c.Limits.PayloadBytes = 512 }, "limits.payload_bytes", ""},
		{"payload below message", func(c *Config) { c.Limits.PayloadBytes = 5000 }, "limits.payload_bytes", "at least limits.message_bytes + 1024 = 5120"},
		{"payload just enough", func(c *Config) { c.Limits.PayloadBytes = 5120 }, "", ""},
		{"payload too large", func(c *Config) { c.Limits.PayloadBytes = 10<<20 + 1 }, "limits.payload_bytes", "1024 to 10485760"},
		{"rooms per user", func(c *Config) { c.Limits.RoomsPerUser = 100_001 }, "limits.rooms_per_user", "from 1 to 100000"},
		{"events per second", func(c *Config) { c.Limits.EventsPerSecond = -1 }, "limits.events_per_second", "more than 0"},
		{"events per second fraction", func(c *Config) { c.Limits.EventsPerSecond = 0.5 }, "", ""},
		{"event burst", func(c *Config) { c.Limits.EventBurst = 0 }, "limits.event_burst", "at least 1"},
		{"rate strikes", func(c *Config) { c.Limits.RateStrikes = 0 }, "limits.rate_strikes", "at least 1"},
		{"send buffer too small", func(c *Config) { c.Limits.SendBufferBytes = 1000 }, "limits.send_buffer_bytes", "65536"},
		{"send buffer too large", func(c *Config) { c.Limits.SendBufferBytes = 2 << 30 }, "limits.send_buffer_bytes", "1073741824"},

		{"shutdown timeout", func(c *Config) { c.Shutdown.Timeout = 0 }, "shutdown.timeout", "more than 0"},
		{"shutdown drain negative", func(c *Config) { c.Shutdown.Drain = -time.Second }, "shutdown.drain", "must not be negative"},
		{"shutdown drain as long as timeout", func(c *Config) { c.Shutdown.Drain = c.Shutdown.Timeout }, "shutdown.drain", "less than shutdown.timeout (30s)"},
		{"shutdown drain zero", func(c *Config) { c.Shutdown.Drain = 0 }, "", ""},

		{"recovery negative", func(c *Config) { c.Recovery.MaxDisconnection = -time.Second }, "recovery.max_disconnection", "must not be negative"},
		{"recovery off", func(c *Config) { c.Recovery.MaxDisconnection = 0 }, "", ""},
		{"recovery packets", func(c *Config) { c.Recovery.MaxPackets = 0 }, "recovery.max_packets", "at least 1"},
		{"recovery stream", func(c *Config) { c.Recovery.StreamLength = 99 }, "recovery.stream_length", "at least 100"},

		{"presence too short", func(c *Config) { c.Presence.TTL = 2 * time.Second }, "presence.ttl", "from 3s to 1m"},
		{"presence too long", func(c *Config) { c.Presence.TTL = 61 * time.Second }, "presence.ttl", "from 3s to 1m"},
		{"presence bounds", func(c *Config) { c.Presence.TTL = 3 * time.Second }, "", ""},

		{"instance id", func(c *Config) { c.Instance.ID = "my host" }, "instance.id", "A-Z a-z 0-9 _ . -"},
		{"instance id too long", func(c *Config) { c.Instance.ID = strings.Repeat("i", 65) }, "instance.id", "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			errs := errorList(c.Validate())
			if tt.key == "" {
				if len(errs) > 0 {
					t.Fatalf("Validate() = %q, want no error", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("Validate() = nil, want an error on %s", tt.key)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e, tt.key+": ") || !strings.Contains(e, tt.want) {
					t.Errorf("error %q\nwant it to start with %q and contain %q", e, tt.key+": ", tt.want)
				}
				if strings.Contains(e, "hunter2") {
					t.Errorf("error %q shows the password of redis.url", e)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Listen = "nope"
	c.History.Size = 0
	c.Auth.Mode = "jwt"
	errs := errorList(c.Validate())
	var keys []string
	for _, e := range errs {
		keys = append(keys, e[:strings.Index(e, ":")])
	}
	if want := []string{"listen", "auth.jwt.secret", "history.size"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("errors on %q, want %q: %q", keys, want, errs)
	}
}

func TestLoadDefaultListenFollowsAuthMode(t *testing.T) {
	dev, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if dev.Listen != "127.0.0.1:3000" {
		t.Errorf("dev mode listen = %q, want 127.0.0.1:3000", dev.Listen)
	}
	jwtMode, err := Load(nil, env(map[string]string{"CHATD_AUTH_MODE": "jwt", "CHATD_AUTH_JWT_SECRET": strings.Repeat("s", 32)}))
	if err != nil {
		t.Fatal(err)
	}
	if jwtMode.Listen != ":3000" {
		t.Errorf("jwt mode listen = %q, want :3000", jwtMode.Listen)
	}
	got := loadError(t, nil, env(map[string]string{"CHATD_LISTEN": ":3000"}))
	for _, want := range []string{"auth.mode: ", "listen is \":3000\"", "auth.dev_insecure"} {
		if !strings.Contains(got, want) {
			t.Errorf("error %q does not contain %q", got, want)
		}
	}
	if _, err := Load(nil, env(map[string]string{"CHATD_LISTEN": ":3000", "CHATD_AUTH_DEV_INSECURE": "true"})); err != nil {
		t.Errorf("dev mode with CHATD_AUTH_DEV_INSECURE=true: %v", err)
	}
	got = loadError(t, nil, env(map[string]string{"CHATD_AUTH_JWT_SECRET": strings.Repeat("s", 32)}))
	if !strings.Contains(got, "auth.jwt.secret: ") || !strings.Contains(got, "auth.mode") {
		t.Errorf("a secret in dev mode: error %q does not name auth.jwt.secret and auth.mode", got)
	}
}

func TestLoadRoomsPolicies(t *testing.T) {
	cfg, err := Load(nil, env(map[string]string{"CHATD_ROOMS_POLICIES": "dm:*=direct, team-*=granted,news=readonly,*=open"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dm:*=direct", "team-*=granted", "news=readonly", "*=open"}
	if !reflect.DeepEqual(cfg.Rooms.Policies, want) {
		t.Errorf("rooms.policies = %q, want %q", cfg.Rooms.Policies, want)
	}
	path := writeFile(t, "chatd.yaml", "rooms:\n  policies:\n    - dm:*=direct\n    - \"*=granted\"\n")
	cfg, err = Load([]string{"--config", path}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dm:*=direct", "*=granted"}; !reflect.DeepEqual(cfg.Rooms.Policies, want) {
		t.Errorf("rooms.policies from YAML = %q, want %q", cfg.Rooms.Policies, want)
	}
	got := loadError(t, nil, env(map[string]string{"CHATD_ROOMS_POLICIES": "dm:*=secret"}))
	if !strings.HasPrefix(got, "rooms.policies: ") || !strings.Contains(got, `"secret"`) {
		t.Errorf("error %q does not start with rooms.policies and name the policy", got)
	}
}

func TestLoadValidates(t *testing.T) {
	got := loadError(t, []string{"--auth-mode=jwt"}, env(map[string]string{"CHATD_HISTORY_SIZE": "0"}))
	for _, want := range []string{`auth.jwt.secret: required when auth.mode is "jwt"`, "history.size: must be from 1 to 1000000, not 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("error %q does not contain %q", got, want)
		}
	}
}

func TestMasked(t *testing.T) {
	c := Default()
	c.Redis.Password = "redis-pw"
	c.Redis.URL = "redis://alice:url-pw@redis:6379/0"
	c.Auth.JWT.Secret = strings.Repeat("j", 32)
	c.API.Token = "api-token"
	c.API.AWSAccessKeyID = "AKIDEXAMPLE"
	c.API.AWSSecretAccessKey = "aws-secret"
	c.Redis.Username = "alice"
	c.CORS.Origins = []string{"*"}

	m := c.Masked()
	tests := []struct{ name, got, want string }{
		{"redis.password", m.Redis.Password, "***"},
		{"redis.url", m.Redis.URL, "redis://alice:***@redis:6379/0"},
		{"auth.jwt.secret", m.Auth.JWT.Secret, "***"},
		{"api.token", m.API.Token, "***"},
		{"api.aws_secret_access_key", m.API.AWSSecretAccessKey, "***"},
		{"api.aws_access_key_id (not secret)", m.API.AWSAccessKeyID, "AKIDEXAMPLE"},
		{"redis.username (not secret)", m.Redis.Username, "alice"},
		{"original untouched", c.API.Token, "api-token"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}

	out, err := m.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"redis-pw", "url-pw", "jjjj", "api-token", "aws-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked YAML shows %q:\n%s", secret, out)
		}
	}

	empty := Default().Masked()
	if empty.API.Token != "" || empty.Auth.JWT.Secret != "" || empty.Redis.URL != "" {
		t.Errorf("empty secrets masked: %+v", empty)
	}
	if u := (Config{Redis: RedisConfig{URL: "redis://redis:6379"}}).Masked().Redis.URL; u != "redis://redis:6379" {
		t.Errorf("URL without password masked to %q", u)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c := Default()
	c.Listen = "127.0.0.1:4000"
	c.Log = LogConfig{Level: "debug", Format: "json"}
	c.Redis.Addrs = []string{"s0:26379", "s1:26379"}
	c.Redis.MasterName = "mymaster"
	c.Redis.Password = "0123" // looks like a number
	c.Redis.Prefix = "chat:prod"
	c.Redis.Timeout = 1500 * time.Millisecond
	c.Auth.Mode = "jwt"
	c.Auth.JWT.Secret = strings.Repeat("y", 40)
	c.API.Token = strings.Repeat("7", 32) // looks like a number
	c.API.GatewayEvent = "true"           // looks like a bool
	c.API.Rate = 2.5
	c.CORS.Origins = []string{"*", "https://a.example"}
	c.History.Size = 50
	c.Limits.EventsPerSecond = 0.25
	c.Shutdown = ShutdownConfig{Timeout: time.Hour, Drain: 0}
	c.Recovery.MaxDisconnection = 0
	c.Presence.TTL = 3 * time.Second
	c.Instance.ID = "chatd-1"
	c.Metrics.Enabled = false
	if err := c.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}

	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load([]string{"--config", writeFile(t, "out.yaml", string(out))}, env(nil))
	if err != nil {
		t.Fatalf("Load of YAML():\n%s\n%v", out, err)
	}
	if !reflect.DeepEqual(*got, c) {
		t.Errorf("round trip\n got %+v\nwant %+v\nYAML:\n%s", *got, c, out)
	}
	if !strings.Contains(string(out), "  timeout: 1h\n") || !strings.Contains(string(out), "  size: 50\n") {
		t.Errorf("YAML does not use the keys and duration text:\n%s", out)
	}
}

func TestDefaultDrainFollowsShortTimeout(t *testing.T) {
	cfg, err := Load(nil, func(k string) string {
		if k == "CHATD_SHUTDOWN_TIMEOUT" {
			return "5s"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Shutdown.Drain >= cfg.Shutdown.Timeout || cfg.Shutdown.Drain <= 0 {
		t.Fatalf("drain %s with timeout %s", cfg.Shutdown.Drain, cfg.Shutdown.Timeout)
	}
	// An explicit drain that does not fit is still an error naming the key.
	_, err = Load([]string{"--shutdown-timeout=5s", "--shutdown-drain=6s"}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "shutdown.drain") {
		t.Fatalf("explicit drain over the timeout: %v", err)
	}
}

func TestPlaceholderSecretsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--auth-mode=jwt", "--auth-jwt-secret=change-me-to-a-random-hs256-secret"},
		{"--api-token=change-me-to-a-random-api-token"},
		{"--api-token=CHANGEME0123456789"},
	} {
		_, err := Load(args, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "placeholder") {
			t.Errorf("%v: err = %v, want a placeholder error", args, err)
		}
	}
}
