package deploytest

import (
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// redisKeepsData reports what is wrong with the arguments of a shipped
// redis-server: chatd needs its data kept (append-only file) and never
// evicted (noeviction), or "" when they are right.
func redisKeepsData(args []string) string {
	joined := strings.Join(args, " ")
	var wrong []string
	if !strings.Contains(joined, "--appendonly yes") {
		wrong = append(wrong, "no --appendonly yes")
	}
	if !strings.Contains(joined, "--maxmemory-policy noeviction") {
		wrong = append(wrong, "no --maxmemory-policy noeviction")
	}
	return strings.Join(wrong, ", ")
}

func TestComposeRedisKeepsItsData(t *testing.T) {
	r := service(t, loadCompose(t), "redis")
	if msg := redisKeepsData(r.Command); msg != "" {
		t.Errorf("compose redis command %v: %s", r.Command, msg)
	}
	if !slices.ContainsFunc(r.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" }) {
		t.Errorf("compose redis has no volume at /data: %+v", r.Volumes)
	}
}

func TestKustomizeRedisKeepsItsData(t *testing.T) {
	d := kustomizeBuild(t, ".").deployment(t, "chatd-redis")
	c := d.Spec.Template.Spec.Containers[0]
	if msg := redisKeepsData(append(c.Command, c.Args...)); msg != "" {
		t.Errorf("deploy/redis args %v: %s", c.Args, msg)
	}
}
