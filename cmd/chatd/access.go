package main

import (
	"log/slog"

	"github.com/chatd/chatd/config"
	"github.com/chatd/chatd/server"
)

// devInsecure reports whether chatd runs in dev mode where other machines
// can reach it (auth.dev_insecure on a non-loopback listen address).
func devInsecure(cfg config.Config) bool {
	return cfg.Auth.Mode == "dev" && !config.IsLoopback(cfg.Listen)
}

// warnDevMode logs, at start, that dev mode lets clients name themselves.
func warnDevMode(log *slog.Logger, cfg config.Config) {
	switch {
	case cfg.Auth.Mode != "dev":
	case devInsecure(cfg):
		log.Warn("dev mode on a non-loopback address (auth.dev_insecure: true): anyone who can reach chatd can sign in as anyone; "+
			"for production set auth.mode: jwt", "listen", cfg.Listen)
	default:
		log.Info("dev mode: clients name themselves, so anyone on this machine can sign in as anyone; for production set auth.mode: jwt",
			"listen", cfg.Listen)
	}
}

// jwtChecks are the claim checks of auth.jwt.*.
func jwtChecks(cfg config.Config) server.ClaimChecks {
	j := cfg.Auth.JWT
	return server.ClaimChecks{RequireExp: j.RequireExp, Audience: j.Audience, Issuer: j.Issuer, Leeway: j.Leeway}
}
