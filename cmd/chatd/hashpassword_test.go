package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatd/chatd/config"
)

func TestHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := hashPassword([]string{"-cost", "10"}, strings.NewReader("correct horse battery\n"), &out); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery")); err != nil {
		t.Fatalf("the printed hash %q does not match the password: %v", hash, err)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != 10 {
		t.Fatalf("cost %d, want 10", cost)
	}
	// What it prints is a valid admin.password_hash.
	env := map[string]string{"CHATD_ADMIN_USERNAME": "ops", "CHATD_ADMIN_PASSWORD_HASH": hash}
	if _, err := config.Load(nil, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("config refuses the hash: %v", err)
	}
}

func TestHashPasswordRefusals(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"nothing on stdin", nil, "", "no password on standard input"},
		{"short", nil, "short\n", "at least 12"},
		{"too long", nil, strings.Repeat("p", 80) + "\n", "at most 72"},
		{"password as an argument", []string{"hunter2hunter2"}, "", "never an argument"},
		{"weak cost", []string{"-cost", "4"}, "a long enough password\n", "-cost must be from 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := stdin
			stdin = strings.NewReader(tt.stdin)
			t.Cleanup(func() { stdin = old })
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"hash-password"}, tt.args...), func(string) string { return "" }, &out, &out)
			if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want a usage error containing %q", err, tt.want)
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q", out.String())
			}
		})
	}
}
