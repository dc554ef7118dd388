package config

import (
	"strings"
	"testing"
)

// validateCase is one row of a Validate table: change applied to Default(),
// then either no error (key "") or an error that starts with "key: " and
// contains want.
type validateCase struct {
	name   string
	change func(*Config)
	key    string
	want   string
}

// checkValidate runs one validateCase and returns the changed config.
func checkValidate(t *testing.T, tt validateCase) Config {
	t.Helper()
	c := Default()
	tt.change(&c)
	err := c.Validate()
	switch {
	case tt.key == "" && err != nil:
		t.Fatalf("Validate() = %v, want no error", err)
	case tt.key != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.key+": ") || !strings.Contains(err.Error(), tt.want)):
		t.Fatalf("Validate() = %v, want an error starting with %q and containing %q", err, tt.key+": ", tt.want)
	}
	return c
}
