package deploytest

import (
	"sort"
	"strings"
	"testing"
)

// knownEnv is every CHATD_* environment variable chatd reads (the fields of config.Config
// plus CHATD_CONFIG). chatd refuses to start with a CHATD_* variable it does not know, so a
// deployment file that sets another name would crash-loop. TestChatdAcceptsDeploymentConfig
// checks the same files with the real binary's check-config.
//
// TODO(lead): once package config exports its list of environment names, use it here.
var knownEnv = map[string]bool{
	"CHATD_CONFIG":                     true,
	"CHATD_LISTEN":                     true,
	"CHATD_LOG_LEVEL":                  true,
	"CHATD_LOG_FORMAT":                 true,
	"CHATD_REDIS_URL":                  true,
	"CHATD_REDIS_ADDRS":                true,
	"CHATD_REDIS_MASTER_NAME":          true,
	"CHATD_REDIS_USERNAME":             true,
	"CHATD_REDIS_PASSWORD":             true,
	"CHATD_REDIS_PREFIX":               true,
	"CHATD_REDIS_TIMEOUT":              true,
	"CHATD_AUTH_MODE":                  true,
	"CHATD_AUTH_DEV_INSECURE":          true,
	"CHATD_AUTH_JWT_SECRET":            true,
	"CHATD_AUTH_JWT_PUBLIC_KEY_FILE":   true,
	"CHATD_AUTH_JWT_REQUIRE_EXP":       true,
	"CHATD_AUTH_JWT_AUDIENCE":          true,
	"CHATD_AUTH_JWT_ISSUER":            true,
	"CHATD_AUTH_JWT_LEEWAY":            true,
	"CHATD_API_TOKEN":                  true,
	"CHATD_API_GATEWAY_EVENT":          true,
	"CHATD_API_AWS_ACCESS_KEY_ID":      true,
	"CHATD_API_AWS_SECRET_ACCESS_KEY":  true,
	"CHATD_API_RATE":                   true,
	"CHATD_API_BURST":                  true,
	"CHATD_CORS_ORIGINS":               true,
	"CHATD_ROOMS_POLICIES":             true,
	"CHATD_HISTORY_SIZE":               true,
	"CHATD_LIMITS_MESSAGE_BYTES":       true,
	"CHATD_LIMITS_PAYLOAD_BYTES":       true,
	"CHATD_LIMITS_ROOMS_PER_USER":      true,
	"CHATD_LIMITS_EVENTS_PER_SECOND":   true,
	"CHATD_LIMITS_EVENT_BURST":         true,
	"CHATD_LIMITS_RATE_STRIKES":        true,
	"CHATD_SHUTDOWN_TIMEOUT":           true,
	"CHATD_SHUTDOWN_DRAIN":             true,
	"CHATD_RECOVERY_MAX_DISCONNECTION": true,
	"CHATD_RECOVERY_MAX_PACKETS":       true,
	"CHATD_RECOVERY_STREAM_LENGTH":     true,
	"CHATD_PRESENCE_TTL":               true,
	"CHATD_INSTANCE_ID":                true,
	"CHATD_MEMORY_RELEASE_WHEN_IDLE":   true,
	"CHATD_METRICS_ENABLED":            true,
	"CHATD_WEB_ENABLED":                true,
	"CHATD_HTTP_TRUSTED_PROXIES":       true,
}

// unknownChatdEnv returns the CHATD_* names among names that chatd does not know, sorted.
// Names without the CHATD_ prefix (GOMEMLIMIT, ...) are not chatd's and pass; a lower-case
// chatd_ name is reported, as chatd would silently ignore it.
func unknownChatdEnv(names []string) []string {
	var unknown []string
	for _, n := range names {
		if strings.HasPrefix(strings.ToUpper(n), "CHATD_") && !knownEnv[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	return unknown
}

func TestUnknownChatdEnv(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"CHATD_LISTEN", "CHATD_REDIS_URL", "GOMEMLIMIT"}, ""},
		{[]string{"CHATD_REDIS_URI", "CHATD_LISTEN", "CHATD_AUTHMODE"}, "CHATD_AUTHMODE,CHATD_REDIS_URI"},
		{[]string{"chatd_listen"}, "chatd_listen"},
	}
	for _, tt := range tests {
		if got := strings.Join(unknownChatdEnv(tt.names), ","); got != tt.want {
			t.Errorf("unknownChatdEnv(%v) = %q, want %q", tt.names, got, tt.want)
		}
	}
}
