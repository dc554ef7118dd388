package server

import (
	"strings"
	"testing"
)

func TestConfigJSONSaysWhenDevModeIsOpenToOthers(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"dev on loopback", Config{AuthMode: AuthDev}, `"devInsecure":false`},
		{"dev off loopback", Config{AuthMode: AuthDev, DevInsecure: true}, `"devInsecure":true`},
		{"jwt", Config{AuthMode: AuthJWT, JWTSecret: []byte(strings.Repeat("s", 32)), DevInsecure: true}, `"devInsecure":false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newRoutesServer(t, tt.cfg, nil)
			if _, body := get(t, ts.URL+"/chatd/config.json"); !strings.Contains(body, tt.want) {
				t.Fatalf("config.json = %s, want %s", body, tt.want)
			}
		})
	}
}
