// Package redistag names the Redis Cluster hash tags that chatd gives to
// what belongs together, so that a room's channel and its keys can live in
// one hash slot, on one master.
//
// Redis Cluster hashes only the text between the first '{' of a key (or of
// a sharded Pub/Sub channel) and the next '}' after it, when that text is
// not empty. A tag made here is meant to be the first '{' of the name it is
// put in: a prefix or a namespace before it must not contain '{'.
package redistag

// Room returns the hash tag of a room: "{r:" + room + "}". A room name may
// contain any byte: one that contains '}' ends the hashed text early (the
// tag of "a}b" hashes "r:a"), which still maps the room to one slot, always
// the same, and only the slot matters. The "r:" keeps the hashed text of
// the empty room name non-empty and apart from other kinds of tags.
func Room(room string) string {
	return "{r:" + room + "}"
}
