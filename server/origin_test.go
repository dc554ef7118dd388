package server

import "testing"

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		origin, host string
		want         bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", true},
		{"http://Chat.Example.com", "chat.example.com", true},
		{"https://chat.example.com", "chat.example.com", true},
		{"https://chat.example.com:443", "chat.example.com", true},
		{"http://chat.example.com", "chat.example.com:80", true},
		{"http://[::1]:8080", "[::1]:8080", true},
		{"http://[::1]", "[::1]:80", true},
		{"http://127.0.0.1:8081", "127.0.0.1:8080", false},
		{"http://evil.example", "chat.example.com", false},
		{"http://chat.example.com.evil.example", "chat.example.com", false},
		{"https://chat.example.com", "chat.example.com:80", false},
		{"null", "chat.example.com", false},
		{"file://chat.example.com", "chat.example.com", false},
		{"", "chat.example.com", false},
	}
	for _, tt := range tests {
		if got := sameOrigin(tt.origin, tt.host); got != tt.want {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", tt.origin, tt.host, got, tt.want)
		}
	}
}
