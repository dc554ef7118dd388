package config

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestValidateAdmin covers the admin.* settings: the Admin UI is off
// without both a user name and a bcrypt hash, and a plain password or a
// weak hash is refused with an error that names the key.
func TestValidateAdmin(t *testing.T) {
	hash := func(cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte("s3cret-password"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	good, weak := hash(MinAdminBcryptCost), hash(bcrypt.MinCost)
	tests := []validateCase{
		{"off by default", func(*Config) {}, "", ""},
		{"on", func(c *Config) { c.Admin.Username, c.Admin.PasswordHash = "ops", good }, "", ""},
		{"read-only", func(c *Config) { c.Admin.Username, c.Admin.PasswordHash, c.Admin.ReadOnly = "ops", good, true }, "", ""},
		{"user name without hash", func(c *Config) { c.Admin.Username = "ops" }, "admin.password_hash", "chatd hash-password"},
		{"hash without user name", func(c *Config) { c.Admin.PasswordHash = good }, "admin.username", "required"},
		{"plain password", func(c *Config) { c.Admin.Username, c.Admin.PasswordHash = "ops", "s3cret-password" }, "admin.password_hash", "plain password is refused"},
		{"cost too low", func(c *Config) { c.Admin.Username, c.Admin.PasswordHash = "ops", weak }, "admin.password_hash", "cost 4; it must be at least 10"},
		{"user name with a newline", func(c *Config) { c.Admin.Username, c.Admin.PasswordHash = "ops\n", good }, "admin.username", "control characters"},
		{"session ttl too short", func(c *Config) { c.Admin.SessionTTL = 0 }, "admin.session_ttl", "from 1m to 720h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkValidate(t, tt)
			if tt.key == "" && c.Admin.Enabled() != (c.Admin.Username != "") {
				t.Fatalf("Enabled() = %v with username %q", c.Admin.Enabled(), c.Admin.Username)
			}
		})
	}
}

// TestAdminFromEnvironmentAndMasked reads the admin settings from the
// environment and never prints the hash.
func TestAdminFromEnvironmentAndMasked(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw-for-env"), MinAdminBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHATD_ADMIN_USERNAME":      "ops",
		"CHATD_ADMIN_PASSWORD_HASH": string(h),
		"CHATD_ADMIN_READONLY":      "true",
	}
	c, err := Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !c.Admin.Enabled() || !c.Admin.ReadOnly || c.Admin.Username != "ops" || c.Admin.PasswordHash != string(h) {
		t.Fatalf("admin = %+v", c.Admin)
	}
	out, err := c.Masked().YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), string(h)) {
		t.Fatalf("check-config output shows the password hash:\n%s", out)
	}
}
