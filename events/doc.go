// Package events tells an application's backend what happened in chatd:
// messages created, members joined and left, users online and offline, rooms
// occupied and vacated. Each [Event] has an id to deduplicate on and a time.
//
// The chat path never waits on the backend. The server calls a [Sink]
// (a [Publisher]), which puts the event in a [Queue] and returns; a full
// queue drops its oldest unsent events and counts them. A [Sender] takes
// batches from the queue, signs each POST with package internal/signature,
// and retries a batch that failed with exponential back-off and jitter until
// its events are older than the retry window, when they are dropped and
// counted. Delivery is at least once: a batch the backend took but did not
// acknowledge in time is sent again, with the same event ids.
//
// A single instance keeps its queue in memory ([MemoryQueue]). In cluster
// mode package redis keeps it in a Redis stream with a consumer group, so
// that a restart or a backend outage loses nothing, each event is sent by one
// instance, and the events an instance held when it crashed are taken over
// by another.
package events
