package config

import (
	"strings"
	"testing"
	"time"
)

func TestHookNames(t *testing.T) {
	for _, tt := range []struct{ key, env string }{
		{"hooks.secret", "CHATD_HOOKS_SECRET"},
		{"hooks.timeout", "CHATD_HOOKS_TIMEOUT"},
		{"hooks.headers", "CHATD_HOOKS_HEADERS"},
		{"hooks.connect.url", "CHATD_HOOKS_CONNECT_URL"},
		{"hooks.connect.timeout", "CHATD_HOOKS_CONNECT_TIMEOUT"},
		{"hooks.connect.on_error", "CHATD_HOOKS_CONNECT_ON_ERROR"},
		{"hooks.join.on_error", "CHATD_HOOKS_JOIN_ON_ERROR"},
		{"hooks.message.url", "CHATD_HOOKS_MESSAGE_URL"},
		{"hooks.rpc.url", "CHATD_HOOKS_RPC_URL"},
		{"hooks.rpc.timeout", "CHATD_HOOKS_RPC_TIMEOUT"},
		{"hooks.apigateway.url", "CHATD_HOOKS_APIGATEWAY_URL"},
		{"hooks.apigateway.domain_name", "CHATD_HOOKS_APIGATEWAY_DOMAIN_NAME"},
		{"hooks.apigateway.stage", "CHATD_HOOKS_APIGATEWAY_STAGE"},
		{"hooks.apigateway.timeout", "CHATD_HOOKS_APIGATEWAY_TIMEOUT"},
	} {
		f := fieldByKey[tt.key]
		if f == nil || f.env != tt.env {
			t.Errorf("%s: field %+v, want environment %s", tt.key, f, tt.env)
		}
	}
	if !fieldByKey["hooks.secret"].secret {
		t.Error("hooks.secret is not masked")
	}
}

func TestValidateHooks(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	withSecret := func(c *Config) { c.Hooks.Secret = secret }
	for _, tt := range []struct {
		name      string
		change    func(*Config)
		key, want string
	}{
		{"off by default", func(*Config) {}, "", ""},
		{"all on", func(c *Config) {
			withSecret(c)
			c.Hooks.Connect.URL = "https://backend.internal/connect"
			c.Hooks.Join.URL = "http://127.0.0.1:8080/join"
			c.Hooks.Message.URL = "http://backend/message"
			c.Hooks.Message.OnError = HookAllow
			c.Hooks.RPC.URL = "http://backend/rpc"
			c.Hooks.APIGateway = APIGatewayConfig{URL: "http://handler/", DomainName: "chat.example.com:8443", Stage: "production"}
		}, "", ""},
		{"url without secret", func(c *Config) { c.Hooks.Join.URL = "http://backend/join" }, "hooks.secret", "required when a hook or hooks.events.url is set"},
		{"short secret", func(c *Config) { c.Hooks.Secret = "short"; c.Hooks.RPC.URL = "http://b/" }, "hooks.secret", "at least 32 characters, not 5"},
		{"placeholder secret", func(c *Config) { c.Hooks.Secret = "change-me-" + strings.Repeat("x", 30) }, "hooks.secret", "placeholder"},
		{"not http", func(c *Config) { withSecret(c); c.Hooks.Join.URL = "ftp://backend/" }, "hooks.join.url", "http or https URL"},
		{"relative", func(c *Config) { withSecret(c); c.Hooks.Message.URL = "/hooks" }, "hooks.message.url", "http or https URL"},
		{"user in url", func(c *Config) { withSecret(c); c.Hooks.RPC.URL = "http://u:p@backend/" }, "hooks.rpc.url", "must not hold a user name or password"},
		{"bad on_error", func(c *Config) { c.Hooks.Connect.OnError = "maybe" }, "hooks.connect.on_error", `"maybe" is not refuse or allow`},
		{"timeout zero", func(c *Config) { c.Hooks.Timeout = 0 }, "hooks.timeout", "more than 0"},
		{"timeout too long", func(c *Config) { c.Hooks.Join.Timeout = time.Minute }, "hooks.join.timeout", "from 0 (hooks.timeout) to 30s"},
		{"bad header", func(c *Config) { c.Hooks.Headers = []string{"X Bad"} }, "hooks.headers", `"X Bad" is not a header name`},
		{"gateway without domain and stage", func(c *Config) { withSecret(c); c.Hooks.APIGateway.URL = "http://handler/" }, "hooks.apigateway.", "required with hooks.apigateway.url"},
		{"gateway domain with a path", func(c *Config) { c.Hooks.APIGateway.DomainName = "chat.example.com/x" }, "hooks.apigateway.domain_name", "not a host or host:port"},
		{"gateway stage with a slash", func(c *Config) { c.Hooks.APIGateway.Stage = "a/b" }, "hooks.apigateway.stage", "one path segment"},
		{"hook mode without connect hook", func(c *Config) { c.Auth.Mode = "hook"; c.Listen = ":3000" }, "auth.mode", "needs hooks.connect.url"},
		{"hook mode failing open", func(c *Config) {
			c.Auth.Mode = "hook"
			withSecret(c)
			c.Hooks.Connect = HookConfig{URL: "http://b/", OnError: HookAllow}
		}, "hooks.connect.on_error", "must be refuse"},
		{"hook mode on any address", func(c *Config) {
			c.Auth.Mode = "hook"
			c.Listen = ":3000"
			withSecret(c)
			c.Hooks.Connect.URL = "http://b/"
		}, "", ""},
	} {
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
				if !strings.HasPrefix(e, tt.key) || !strings.Contains(e, tt.want) {
					t.Errorf("error %q\nwant it to start with %q and contain %q", e, tt.key, tt.want)
				}
			}
		})
	}
}

func TestHookModeListensEverywhere(t *testing.T) {
	env := map[string]string{
		"CHATD_AUTH_MODE":         "hook",
		"CHATD_HOOKS_SECRET":      "0123456789abcdef0123456789abcdef",
		"CHATD_HOOKS_CONNECT_URL": "http://backend/connect",
	}
	c, err := Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":3000" {
		t.Fatalf("listen = %q, want :3000 as in jwt mode", c.Listen)
	}
	if got := c.Hooks.TimeoutOf(0); got != time.Second {
		t.Fatalf("hook timeout = %s, want the 1s default", got)
	}
}
