package rooms

import "strings"

// DefaultMemoryIdempotencyPerUser is how many sends of one user a
// [MemoryIdempotency] remembers at most: past it the user's own oldest go
// first, so that one user sending clientMsgIds in a loop cannot push other
// users' sends out before their retries come.
const DefaultMemoryIdempotencyPerUser = 1000

// perUserCount counts the entries of each user; the zero value is ready.
type perUserCount struct {
	n map[string]int
}

// add adds delta to the count of key's user.
func (c *perUserCount) add(key string, delta int) {
	u := keyUser(key)
	if c.n == nil {
		c.n = make(map[string]int)
	}
	if v := c.n[u] + delta; v > 0 {
		c.n[u] = v
	} else {
		delete(c.n, u)
	}
}

// boundUser drops the oldest entries of key's user while it has more than
// its bound; s.mu held. Only a user over its bound pays for the search.
func (s *MemoryIdempotency) boundUser(key string) {
	limit := s.maxPerUser
	if limit <= 0 {
		limit = DefaultMemoryIdempotencyPerUser
	}
	u := keyUser(key)
	for i := 0; s.perUser.n[u] > limit && i < len(s.order); i++ {
		k := s.order[i]
		if k == key || keyUser(k) != u {
			continue
		}
		if _, ok := s.entries[k]; ok {
			delete(s.entries, k)
			s.perUser.add(k, -1)
		}
	}
}

// keyUser returns the (escaped) user part of an idempotency key, which is
// room NUL user NUL clientMsgId with NULs in the user doubled.
func keyUser(key string) string {
	_, rest, ok := strings.Cut(key, "\x00")
	if !ok {
		return ""
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] != 0 {
			continue
		}
		if i+1 < len(rest) && rest[i+1] == 0 {
			i++ // an escaped NUL of the user id
			continue
		}
		return rest[:i]
	}
	return rest
}
