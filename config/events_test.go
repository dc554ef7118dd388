package config

import (
	"strings"
	"testing"
	"time"
)

// TestValidateEvents covers hooks.secret and hooks.events.*: each error
// names its key and says what would be valid.
func TestValidateEvents(t *testing.T) {
	secret := strings.Repeat("s", 32)
	on := func(c *Config) {
		c.Hooks.Events.URL = "https://backend.example.com/chatd/events"
		c.Hooks.Secret = secret
	}
	tests := []validateCase{
		{"off by default", func(*Config) {}, "", ""},
		{"on", on, "", ""},
		{"http on loopback", func(c *Config) { on(c); c.Hooks.Events.URL = "http://127.0.0.1:8080/events" }, "", ""},
		{"no secret", func(c *Config) { on(c); c.Hooks.Secret = "" }, "hooks.secret", "required when a hook or hooks.events.url is set"},
		{"short secret", func(c *Config) { on(c); c.Hooks.Secret = "short" }, "hooks.secret", "at least 32 characters, not 5"},
		{"placeholder secret", func(c *Config) { on(c); c.Hooks.Secret = "change-me-" + secret }, "hooks.secret", "placeholder"},
		{"not a URL", func(c *Config) { on(c); c.Hooks.Events.URL = "backend:8080" }, "hooks.events.url", "http or https URL"},
		{"other scheme", func(c *Config) { on(c); c.Hooks.Events.URL = "ftp://backend/events" }, "hooks.events.url", "http or https URL"},
		{"credentials", func(c *Config) { on(c); c.Hooks.Events.URL = "https://u:p@backend/events" }, "hooks.events.url", "must not carry a user name"},
		{"timeout too short", func(c *Config) { c.Hooks.Events.Timeout = time.Millisecond }, "hooks.events.timeout", "from 100ms to 1m, not 1ms"},
		{"retry_for zero", func(c *Config) { c.Hooks.Events.RetryFor = 0 }, "hooks.events.retry_for", "from 1s to 24h"},
		{"retry_for too long", func(c *Config) { c.Hooks.Events.RetryFor = 48 * time.Hour }, "hooks.events.retry_for", "from 1s to 24h"},
		{"batch_wait zero", func(c *Config) { c.Hooks.Events.BatchWait = 0 }, "", ""},
		{"batch_wait negative", func(c *Config) { c.Hooks.Events.BatchWait = -time.Second }, "hooks.events.batch_wait", "from 0s to 10s"},
		{"batch_max zero", func(c *Config) { c.Hooks.Events.BatchMax = 0 }, "hooks.events.batch_max", "from 1 to 1000, not 0"},
		{"queue_max zero", func(c *Config) { c.Hooks.Events.QueueMax = 0 }, "hooks.events.queue_max", "from 1 to 10000000, not 0"},
		{"types", func(c *Config) { c.Hooks.Events.Types = []string{"message.created", "user.offline"} }, "", ""},
		{"unknown type", func(c *Config) { c.Hooks.Events.Types = []string{"message.deleted"} }, "hooks.events.types", `"message.deleted" is not an event type; the types are message.created, `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt) })
	}
}

// TestEventsFromEnvironment: every hooks.events key has its CHATD_
// variable, and the secret is masked.
func TestEventsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"CHATD_HOOKS_SECRET":            strings.Repeat("k", 40),
		"CHATD_HOOKS_EVENTS_URL":        "http://127.0.0.1:9999/events",
		"CHATD_HOOKS_EVENTS_TIMEOUT":    "2s",
		"CHATD_HOOKS_EVENTS_RETRY_FOR":  "1m",
		"CHATD_HOOKS_EVENTS_BATCH_MAX":  "7",
		"CHATD_HOOKS_EVENTS_BATCH_WAIT": "0s",
		"CHATD_HOOKS_EVENTS_QUEUE_MAX":  "50",
		"CHATD_HOOKS_EVENTS_TYPES":      "user.online,user.offline",
	}
	c, err := Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	e := c.Hooks.Events
	if e.URL != "http://127.0.0.1:9999/events" || e.Timeout != 2*time.Second || e.RetryFor != time.Minute ||
		e.BatchMax != 7 || e.BatchWait != 0 || e.QueueMax != 50 || strings.Join(e.Types, " ") != "user.online user.offline" {
		t.Fatalf("hooks.events from the environment = %+v", e)
	}
	if m := c.Masked(); m.Hooks.Secret != "***" {
		t.Fatalf("Masked hooks.secret = %q", m.Hooks.Secret)
	}
}
