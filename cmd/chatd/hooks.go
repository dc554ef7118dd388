package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/config"
	"github.com/chatd/chatd/hooks"
	"github.com/chatd/chatd/hooks/apigateway"
	"github.com/chatd/chatd/server"
)

// newHooks builds the backend's hooks that cfg turns on; with none on it
// returns the zero server.Hooks (and registers no metrics). close waits for
// the $disconnect events in flight.
func newHooks(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (h server.Hooks, closer func(context.Context) error, err error) {
	hc := cfg.Hooks
	if !hc.AnyURL() {
		return h, nil, nil
	}
	caller, err := hooks.NewCaller(hooks.CallerConfig{Secret: []byte(hc.Secret), UserAgent: "chatd/" + version}, reg, log)
	if err != nil {
		return h, nil, err
	}
	endpoint := func(c config.HookConfig) hooks.Endpoint {
		return hooks.Endpoint{URL: c.URL, Timeout: hc.TimeoutOf(c.Timeout), AllowOnError: c.OnError == config.HookAllow}
	}
	client, err := hooks.NewClient(hooks.Config{
		Connect: endpoint(hc.Connect),
		Join:    endpoint(hc.Join),
		Message: endpoint(hc.Message),
		RPC:     hooks.Endpoint{URL: hc.RPC.URL, Timeout: hc.TimeoutOf(hc.RPC.Timeout)},
	}, caller)
	if err != nil {
		return h, nil, err
	}
	h.Headers = hc.Headers
	if hc.Connect.URL != "" {
		h.Connect = client
	}
	if hc.Join.URL != "" {
		h.Join = client
	}
	if hc.Message.URL != "" {
		h.Message = client
	}
	if hc.RPC.URL != "" {
		h.RPC = client
	}
	if g := hc.APIGateway; g.URL != "" {
		gw, err := apigateway.New(apigateway.Config{
			URL:        g.URL,
			DomainName: g.DomainName,
			Stage:      g.Stage,
			Timeout:    hc.TimeoutOf(g.Timeout),
			Headers:    hc.Headers,
		}, caller, log)
		if err != nil {
			return h, nil, err
		}
		h.Gateway = gw
		closer = gw.Close
	}
	return h, closer, nil
}
