package rooms

import (
	"fmt"
	"strings"
)

// Policy says who may join, read and post in a room. The room policies
// setting maps room-name patterns to policies; see [Policies].
type Policy string

// The policies.
const (
	// PolicyOpen lets any authenticated user join, read and post; presence
	// is answered to anyone, history to members.
	PolicyOpen Policy = "open"
	// PolicyGranted lets in only users granted the room: by the server API,
	// by the allowed_rooms claim of their token or by a join token.
	PolicyGranted Policy = "granted"
	// PolicyDirect is a conversation between the users its name lists
	// (see [Policies.DirectUsers]); only they may join, read, post or see
	// its presence.
	PolicyDirect Policy = "direct"
	// PolicyReadonly lets anyone join and read; only the server API posts.
	PolicyReadonly Policy = "readonly"
)

// policyNames lists the policies in the order error messages show them.
var policyNames = []Policy{PolicyOpen, PolicyGranted, PolicyDirect, PolicyReadonly}

// Rule is one pattern=policy pair of the room policies setting.
type Rule struct {
	// Pattern is a room name in which * matches any run of characters
	// (none included).
	Pattern string
	// Policy applies to the rooms Pattern matches.
	Policy Policy
}

// Policies is the ordered list of rules that decides each room's policy:
// the first rule whose pattern matches the room name wins, and a room no
// pattern matches is open. The zero value (no rules) makes every room open.
type Policies struct {
	rules []Rule
}

// NewPolicies checks rules and returns them as Policies. A pattern must be
// 1 to 64 characters of room names or '*'; a direct pattern must be a fixed
// prefix followed by one '*' (such as "dm:*"), since the rest of the name
// lists the users.
func NewPolicies(rules []Rule) (*Policies, error) {
	for _, r := range rules {
		if err := ValidatePattern(r.Pattern); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", r.Pattern, err)
		}
		switch r.Policy {
		case PolicyOpen, PolicyGranted, PolicyReadonly:
		case PolicyDirect:
			if strings.Count(r.Pattern, "*") != 1 || !strings.HasSuffix(r.Pattern, "*") {
				return nil, fmt.Errorf("pattern %q: a direct pattern must be a prefix followed by one *, such as dm:*", r.Pattern)
			}
		default:
			return nil, fmt.Errorf("policy %q of pattern %q is not one of %s", r.Policy, r.Pattern, policyList())
		}
	}
	return &Policies{rules: append([]Rule(nil), rules...)}, nil
}

// ParsePolicies reads "pattern=policy" pairs, the form of the setting
// rooms.policies (CHATD_ROOMS_POLICIES is the same pairs separated by
// commas).
func ParsePolicies(pairs []string) (*Policies, error) {
	rules := make([]Rule, 0, len(pairs))
	for _, pair := range pairs {
		pattern, policy, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not pattern=policy, such as dm:*=direct", pair)
		}
		rules = append(rules, Rule{Pattern: strings.TrimSpace(pattern), Policy: Policy(strings.TrimSpace(policy))})
	}
	return NewPolicies(rules)
}

func policyList() string {
	names := make([]string, len(policyNames))
	for i, p := range policyNames {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// Rules returns a copy of the rules, in order.
func (p *Policies) Rules() []Rule {
	if p == nil {
		return nil
	}
	return append([]Rule(nil), p.rules...)
}

// For returns the policy of room and the rule that decided it; a room no
// rule matches is open, with the zero Rule.
func (p *Policies) For(room string) (Policy, Rule) {
	if p != nil {
		for _, r := range p.rules {
			if MatchPattern(r.Pattern, room) {
				return r.Policy, r
			}
		}
	}
	return PolicyOpen, Rule{}
}

// DirectUsers returns the user ids a direct room's name lists, or ok false
// when room is not direct or its name lists no valid ids. The part of the
// name after the pattern's prefix is the ids joined by ':', in any order;
// in an id, a '.' followed by two hex digits stands for the byte they
// give, which writes ':', '.' and every character a room name cannot
// hold (alice:1 is "alice.3a1"). "dm:alice:bob" and "dm:bob:alice" are two
// rooms with the same two members.
func (p *Policies) DirectUsers(room string) (ids []string, ok bool) {
	policy, rule := p.For(room)
	if policy != PolicyDirect {
		return nil, false
	}
	return ParseDirect(strings.TrimSuffix(rule.Pattern, "*"), room)
}

// ParseDirect reads the user ids of a direct room name that starts with
// prefix (see [Policies.DirectUsers]).
func ParseDirect(prefix, room string) (ids []string, ok bool) {
	rest, found := strings.CutPrefix(room, prefix)
	if !found || rest == "" {
		return nil, false
	}
	for _, part := range strings.Split(rest, ":") {
		id, ok := unescapeID(part)
		if !ok || ValidateUserID(id) != nil {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// DirectRoom writes the name of the direct room of ids under prefix (such
// as "dm:"), escaping each id as [Policies.DirectUsers] reads it, in the
// order given.
func DirectRoom(prefix string, ids ...string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(':')
		}
		for j := 0; j < len(id); j++ {
			c := id[j]
			if roomChar(c) && c != ':' && c != '.' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, ".%02x", c)
			}
		}
	}
	return b.String()
}

// unescapeID decodes the ".hh" escapes of one id of a direct room name.
func unescapeID(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if !strings.Contains(s, ".") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '.' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := hexDigit(s[i+1])
		lo, ok2 := hexDigit(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ValidatePattern checks a room pattern: 1 to 64 characters of room names
// (A-Z a-z 0-9 _ - . :) or '*'.
func ValidatePattern(pattern string) error {
	if pattern == "" || len(pattern) > MaxRoomLength {
		return Errorf(CodeBadRequest, "a room pattern must be 1 to %d characters", MaxRoomLength)
	}
	for i := 0; i < len(pattern); i++ {
		if c := pattern[i]; c != '*' && !roomChar(c) {
			return Errorf(CodeBadRequest, "a room pattern may only contain A-Z, a-z, 0-9, '_', '-', '.', ':' and '*'")
		}
	}
	return nil
}

// MatchPattern reports whether name matches pattern, in which each '*'
// matches any run of characters (none included) and every other character
// itself.
func MatchPattern(pattern, name string) bool {
	// Greedy matching with backtracking to the last '*': linear in
	// practice, at most len(pattern)*len(name) steps.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// MatchAny reports whether name matches one of patterns.
func MatchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if MatchPattern(p, name) {
			return true
		}
	}
	return false
}
