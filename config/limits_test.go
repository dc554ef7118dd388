package config

import (
	"strings"
	"testing"
)

// TestValidateLimits covers the settings that protect chatd from abuse:
// each error names its key.
func TestValidateLimits(t *testing.T) {
	tests := []validateCase{
		{"api token long enough", func(c *Config) { c.API.Token = strings.Repeat("t", 32) }, "", ""},
		{"api token too short", func(c *Config) { c.API.Token = "abc" }, "api.token", "at least 32 characters, not 3"},
		{"trusted proxies", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/8", "::1", "192.168.1.7"} }, "", ""},
		{"trusted proxy not an address", func(c *Config) { c.HTTP.TrustedProxies = []string{"nginx"} }, "http.trusted_proxies", `"nginx" is not an IP address`},
		{"trusted proxy bad CIDR", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/40"} }, "http.trusted_proxies", "not a CIDR"},
		{"idle timeout zero", func(c *Config) { c.HTTP.IdleTimeout = 0 }, "http.idle_timeout", "more than 0"},
		{"header timeout zero", func(c *Config) { c.HTTP.HeaderTimeout = 0 }, "http.header_timeout", "more than 0"},
		{"body timeout zero", func(c *Config) { c.HTTP.BodyTimeout = 0 }, "http.body_timeout", "more than 0"},
		{"header bytes too small", func(c *Config) { c.HTTP.MaxHeaderBytes = 100 }, "http.max_header_bytes", "4096 to 1048576"},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "127.0.0.1:9090" }, "", ""},
		{"metrics listen not host:port", func(c *Config) { c.Metrics.Listen = "9090" }, "metrics.listen", "not host:port"},
		{"metrics listen is listen", func(c *Config) { c.Metrics.Listen = c.Listen }, "metrics.listen", "is listen itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt) })
	}
}
