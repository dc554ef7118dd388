package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/chatd/chatd/config"
)

func TestDevModeIsAnnouncedAtStart(t *testing.T) {
	tests := []struct {
		name, mode, listen string
		insecure           bool
		want               string // in the log; "" for no line
	}{
		{"dev on loopback", "dev", "127.0.0.1:3000", false, "level=INFO msg=\"dev mode: clients name themselves"},
		{"dev on every interface", "dev", ":3000", true, "level=WARN msg=\"dev mode on a non-loopback address (auth.dev_insecure: true): anyone who can reach chatd can sign in as anyone"},
		{"jwt", "jwt", ":3000", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Auth.Mode, cfg.Listen = tt.mode, tt.listen
			var buf bytes.Buffer
			warnDevMode(slog.New(slog.NewTextHandler(&buf, nil)), cfg)
			if got := devInsecure(cfg); got != tt.insecure {
				t.Errorf("devInsecure = %v, want %v", got, tt.insecure)
			}
			if tt.want == "" {
				if buf.Len() > 0 {
					t.Errorf("logged %q, want nothing", buf.String())
				}
				return
			}
			if !strings.Contains(buf.String(), tt.want) {
				t.Errorf("logged %q, want %q", buf.String(), tt.want)
			}
		})
	}
}
