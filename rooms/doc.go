// Package rooms holds chatd's chat rules: who belongs to which room, who is
// online, what a room's history holds and which sends were already stored.
//
// The rules live in [Chat]. Chat keeps its state behind four small
// interfaces ([Membership], [Presence], [History] and [Idempotency]), each
// with an in-memory implementation here for a single instance and a Redis
// implementation in package cluster for many instances. Who may be in which
// room is decided here too: [Policies] maps room-name patterns to a
// [Policy] (open, granted, direct, readonly), and [Grants] and [Cutoffs]
// (memory here, Redis in package cluster) hold the server API's grants and
// disconnects. This package imports
// neither socket.io nor Redis: the server package decodes socket events and
// HTTP requests into calls on Chat, and delivers what Chat returns.
package rooms
