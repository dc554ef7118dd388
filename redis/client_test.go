package redis

import (
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestNewClient(t *testing.T) {
	cases := []struct {
		name    string
		cfg     ClientConfig
		cluster bool
		err     string // part of the error; empty: none
	}{
		{"url", ClientConfig{URL: "redis://127.0.0.1:1/0", Timeout: time.Second}, false, ""},
		{"sentinel", ClientConfig{Addrs: []string{"127.0.0.1:1"}, MasterName: "m"}, false, ""},
		{"cluster", ClientConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, true, ""},
		{"bad url", ClientConfig{URL: "http://x"}, false, "redis.url"},
		{"nothing", ClientConfig{}, false, "required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, err := NewClient(c.cfg, nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if _, onCluster := client.(*goredis.ClusterClient); onCluster != c.cluster {
				t.Errorf("client is a %T, want a cluster client: %v", client, c.cluster)
			}
		})
	}
}
