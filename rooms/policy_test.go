package rooms

import (
	"reflect"
	"strings"
	"testing"
)

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "anything", true},
		{"*", "", true},
		{"news", "news", true},
		{"news", "news2", false},
		{"news", "new", false},
		{"dm:*", "dm:alice:bob", true},
		{"dm:*", "dm:", true},
		{"dm:*", "dm", false},
		{"team-*", "team-red", true},
		{"team-*", "xteam-red", false},
		{"*-ops", "eu-ops", true},
		{"*-ops", "eu-ops-2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "a-b-b-c", true},
		{"a*b*c", "a-b-b-d", false},
		{"**", "x", true},
		{"a*a*a*a*b", strings.Repeat("a", 60), false},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestPoliciesFirstMatchWins(t *testing.T) {
	p, err := ParsePolicies([]string{"dm:*=direct", "team-*=granted", "news=readonly", "team-open=open", "*=open"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		room string
		want Policy
	}{
		{"dm:alice:bob", PolicyDirect},
		{"team-red", PolicyGranted},
		{"team-open", PolicyGranted}, // team-* comes first
		{"news", PolicyReadonly},
		{"news-2", PolicyOpen},
		{"general", PolicyOpen},
	}
	for _, tt := range tests {
		if got, _ := p.For(tt.room); got != tt.want {
			t.Errorf("For(%q) = %s, want %s", tt.room, got, tt.want)
		}
	}
	var none *Policies
	if got, _ := none.For("x"); got != PolicyOpen {
		t.Errorf("nil Policies: For = %s, want open", got)
	}
	empty, err := ParsePolicies(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := empty.For("secret"); got != PolicyOpen {
		t.Errorf("no rules: For = %s, want open", got)
	}
}

func TestParsePoliciesErrors(t *testing.T) {
	tests := []struct {
		pairs []string
		want  string
	}{
		{[]string{"dm:*"}, `"dm:*" is not pattern=policy`},
		{[]string{"x=private"}, `policy "private" of pattern "x" is not one of open, granted, direct, readonly`},
		{[]string{"=open"}, "a room pattern must be 1 to 64 characters"},
		{[]string{"a b=open"}, "may only contain"},
		{[]string{"dm:*:x=direct"}, "a direct pattern must be a prefix followed by one *"},
		{[]string{"dm=direct"}, "a direct pattern must be a prefix followed by one *"},
	}
	for _, tt := range tests {
		_, err := ParsePolicies(tt.pairs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePolicies(%q) = %v, want an error containing %q", tt.pairs, err, tt.want)
		}
	}
}

func TestDirectUsers(t *testing.T) {
	p, err := ParsePolicies([]string{"dm:*=direct", "*=open"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		room string
		ids  []string
		ok   bool
	}{
		{"dm:alice:bob", []string{"alice", "bob"}, true},
		{"dm:bob:alice", []string{"bob", "alice"}, true},
		{"dm:alice", []string{"alice"}, true},
		{"dm:a.3ab:carol", []string{"a:b", "carol"}, true},
		{"dm:j.2edoe:x.40y.2ez", []string{"j.doe", "x@y.z"}, true},
		{"dm:", nil, false},
		{"dm:alice::bob", nil, false},
		{"dm:bad.zz", nil, false},
		{"dm:cut.3", nil, false},
		{"general", nil, false},
	}
	for _, tt := range tests {
		ids, ok := p.DirectUsers(tt.room)
		if ok != tt.ok || !reflect.DeepEqual(ids, tt.ids) {
			t.Errorf("DirectUsers(%q) = %q, %v; want %q, %v", tt.room, ids, ok, tt.ids, tt.ok)
		}
	}
	for _, ids := range [][]string{{"alice", "bob"}, {"a:b", "j.doe"}, {"x@y.z", "ü"}} {
		room := DirectRoom("dm:", ids...)
		if ValidateRoom(room) != nil {
			t.Errorf("DirectRoom(%q) = %q, not a valid room", ids, room)
		}
		if got, ok := p.DirectUsers(room); !ok || !reflect.DeepEqual(got, ids) {
			t.Errorf("DirectUsers(DirectRoom(%q)) = %q, %v", ids, got, ok)
		}
	}
}
