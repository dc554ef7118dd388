// Package redistag builds the Redis Cluster hash tags that chatd's keys and
// shard channels share.
package redistag

// Room returns the hash tag of a chat room: "{r:<room>}". Redis Cluster
// hashes only the text between a key's first '{' and the next '}', so every
// key and channel that puts this tag first (after a prefix without braces)
// lands in the room's slot, and one script can touch them all. A room name
// that holds a '}' itself ends the tag early, but at the same place every
// time: its keys still share one slot, and only the slot matters.
func Room(room string) string { return "{r:" + room + "}" }
