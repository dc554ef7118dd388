package main

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatd/chatd/web/adminui"
)

// The Admin UI's page is served at /admin/ only with the Admin UI on; off
// (the default) the path is the web client's, which knows no such page.
func TestAdminUIServedOnlyWhenOn(t *testing.T) {
	_, off := startMain(t, testConfig("admin-off"))
	if status, _ := get(t, off+"/admin/"); status != http.StatusNotFound {
		t.Fatalf("GET /admin/ with the Admin UI off: %d, want 404", status)
	}

	h, err := bcrypt.GenerateFromPassword([]byte("an admin password"), 10)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("admin-on")
	cfg.Admin.Username, cfg.Admin.PasswordHash = "ops", string(h)
	_, on := startMain(t, cfg)
	status, body := get(t, on+"/admin/")
	switch {
	case adminui.Built() && status != http.StatusOK:
		t.Fatalf("GET /admin/ with the UI built: %d, want 200", status)
	case !adminui.Built() && (status != http.StatusServiceUnavailable || !strings.Contains(body, adminui.BuildCommand)):
		t.Fatalf("GET /admin/ without the UI built: %d %q, want 503 saying how to build it", status, body)
	}
	// /admin without the slash leads to the page.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(on + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if (res.StatusCode != http.StatusMovedPermanently && res.StatusCode != http.StatusTemporaryRedirect) || res.Header.Get("Location") != "/admin/" {
		t.Fatalf("GET /admin: %d to %q, want a redirect to /admin/", res.StatusCode, res.Header.Get("Location"))
	}
}
