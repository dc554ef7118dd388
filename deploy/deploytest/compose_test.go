package deploytest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// chatdServices are the chatd instances of docker-compose.yml.
var chatdServices = []string{"chatd1", "chatd2", "chatd3"}

// loadCompose loads docker-compose.yml the way `docker compose` does (interpolation with an
// empty environment, so the file's own defaults apply), validating it against the schema.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q (has %v)", name, slices.Sorted(mapsKeys(p.Services)))
	}
	return s
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// env returns the value of name in a service's environment, "" when unset.
func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	want := append([]string{"redis", "lb"}, chatdServices...)
	sort.Strings(want)
	got := slices.Sorted(mapsKeys(p.Services))
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
}

func TestComposePublishesOnlyTheLoadBalancer(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if name == "lb" {
			continue
		}
		if len(s.Ports) > 0 {
			t.Errorf("service %s publishes %v: only the load balancer should", name, s.Ports)
		}
	}
	lb := service(t, p, "lb")
	if len(lb.Ports) != 1 || lb.Ports[0].Published != "8080" || lb.Ports[0].Target != 80 {
		t.Errorf("lb ports = %+v, want one 8080:80", lb.Ports)
	}
}

func TestComposeRedis(t *testing.T) {
	p := loadCompose(t)
	r := service(t, p, "redis")
	if !strings.HasPrefix(r.Image, "redis:7") {
		t.Errorf("redis image = %q, want redis:7-alpine", r.Image)
	}
	if r.HealthCheck == nil || !slices.Equal(r.HealthCheck.Test, []string{"CMD", "redis-cli", "ping"}) {
		t.Errorf("redis healthcheck = %+v, want [CMD redis-cli ping]", r.HealthCheck)
	}
}

func TestComposeChatdInstances(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	ids := map[string]string{}
	for _, name := range chatdServices {
		t.Run(name, func(t *testing.T) {
			s := service(t, p, name)
			if s.Build == nil || filepath.Clean(s.Build.Context) != root {
				t.Errorf("build = %+v, want the repository root with the Dockerfile", s.Build)
			} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("build dockerfile: %v", err)
			}
			var names []string
			for k := range s.Environment {
				names = append(names, k)
			}
			if u := unknownChatdEnv(names); len(u) > 0 {
				t.Errorf("environment sets names chatd does not know: %v", u)
			}
			redisURL, err := url.Parse(env(s, "CHATD_REDIS_URL"))
			if err != nil || redisURL.Scheme != "redis" {
				t.Errorf("CHATD_REDIS_URL = %q, want a redis:// URL", env(s, "CHATD_REDIS_URL"))
			} else if _, ok := p.Services[redisURL.Hostname()]; !ok || redisURL.Hostname() != "redis" {
				t.Errorf("CHATD_REDIS_URL host %q is not the redis service", redisURL.Hostname())
			}
			if got := env(s, "CHATD_LOG_FORMAT"); got != "json" {
				t.Errorf("CHATD_LOG_FORMAT = %q, want json", got)
			}
			if got := env(s, "CHATD_AUTH_MODE"); got != "dev" && got != "jwt" {
				t.Errorf("CHATD_AUTH_MODE = %q, want dev or jwt", got)
			}
			// The try-out's dev mode listens on :3000, which chatd allows
			// only when the file says so explicitly.
			if got := env(s, "CHATD_AUTH_DEV_INSECURE"); got != "true" {
				t.Errorf("CHATD_AUTH_DEV_INSECURE = %q, want \"true\" (dev mode on :3000 is refused without it)", got)
			}
			id := env(s, "CHATD_INSTANCE_ID")
			if id == "" {
				t.Error("CHATD_INSTANCE_ID is not set")
			} else if other, dup := ids[id]; dup {
				t.Errorf("CHATD_INSTANCE_ID %q is also %s's", id, other)
			}
			ids[id] = name

			if dep, ok := s.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on redis = %+v, want condition service_healthy", s.DependsOn)
			}
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("restart = %q, want unless-stopped", s.Restart)
			}
			if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, []string{"CMD", "/chatd", "healthcheck"}) {
				t.Errorf("healthcheck = %+v, want [CMD /chatd healthcheck]", s.HealthCheck)
			}
			shutdown := durationOr(t, env(s, "CHATD_SHUTDOWN_TIMEOUT"), 30*time.Second)
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
				t.Errorf("stop_grace_period = %v, want longer than CHATD_SHUTDOWN_TIMEOUT %v", s.StopGracePeriod, shutdown)
			}
			if drain := durationOr(t, env(s, "CHATD_SHUTDOWN_DRAIN"), 10*time.Second); drain >= shutdown {
				t.Errorf("CHATD_SHUTDOWN_DRAIN %v is not shorter than CHATD_SHUTDOWN_TIMEOUT %v", drain, shutdown)
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("read_only = %v, cap_drop = %v, want a read-only container without capabilities", s.ReadOnly, s.CapDrop)
			}
		})
	}
}

// durationOr parses a CHATD_* duration, def when empty.
func durationOr(t *testing.T, s string, def time.Duration) time.Duration {
	t.Helper()
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func TestComposeLoadBalancer(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	lb := service(t, p, "lb")
	if !strings.HasPrefix(lb.Image, "nginx:1.27") {
		t.Errorf("lb image = %q, want nginx:1.27-alpine (the nginx.conf uses `resolve`, nginx >= 1.27.3)", lb.Image)
	}
	var mounted bool
	for _, v := range lb.Volumes {
		if v.Target != "/etc/nginx/nginx.conf" {
			continue
		}
		mounted = true
		if v.Type != types.VolumeTypeBind || v.Source != filepath.Join(root, "deploy", "nginx", "nginx.conf") || !v.ReadOnly {
			t.Errorf("nginx.conf volume = %+v, want a read-only bind of deploy/nginx/nginx.conf", v)
		}
	}
	if !mounted {
		t.Errorf("lb does not mount deploy/nginx/nginx.conf at /etc/nginx/nginx.conf (volumes %+v)", lb.Volumes)
	}
	for _, name := range chatdServices {
		if dep, ok := lb.DependsOn[name]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("lb depends_on %s = %+v, want service_healthy", name, lb.DependsOn[name])
		}
	}
	if lb.HealthCheck == nil || len(lb.HealthCheck.Test) == 0 {
		t.Error("lb has no healthcheck")
	}
}

// TestComposeMatchesNginxConf checks that the load balancer's upstream is exactly the chatd
// services on the port each one listens on, and that nginx listens on the published port.
func TestComposeMatchesNginxConf(t *testing.T) {
	p := loadCompose(t)
	conf := readNginxConf(t)
	var upstream []string
	for _, m := range upstreamServerRE.FindAllStringSubmatch(conf, -1) {
		upstream = append(upstream, m[1]+":"+m[2])
	}
	var want []string
	for _, name := range chatdServices {
		listen := env(service(t, p, name), "CHATD_LISTEN")
		if listen == "" {
			listen = ":3000"
		}
		_, port, ok := strings.Cut(listen, ":")
		if !ok {
			t.Fatalf("%s: CHATD_LISTEN %q has no port", name, listen)
		}
		want = append(want, name+":"+port)
	}
	if !slices.Equal(upstream, want) {
		t.Errorf("nginx.conf upstream servers = %v, want %v", upstream, want)
	}
	lb := service(t, p, "lb")
	m := regexp.MustCompile(`(?m)^\s*listen\s+(\d+);`).FindStringSubmatch(conf)
	if m == nil || len(lb.Ports) == 0 || m[1] != strconv.Itoa(int(lb.Ports[0].Target)) {
		t.Errorf("nginx.conf listen %v does not match the lb's published target port %+v", m, lb.Ports)
	}
}

// upstreamServerRE matches the `server chatdN:PORT ...;` lines that loopback.sh rewrites.
var upstreamServerRE = regexp.MustCompile(`(?m)^\s*server\s+(chatd\d+):(\d+)\b[^;\n]*;`)

func readNginxConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestComposeBadFileFails shows that the loader used above rejects a broken file, so the
// tests above cannot pass on a file docker compose would refuse.
func TestComposeBadFileFails(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(bad, []byte("services:\n  chatd1:\n    image: chatd\n    stop_grace_priod: 45s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{bad}, cli.WithWorkingDirectory(dir), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = opts.LoadProject(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stop_grace_priod") {
		t.Errorf("loading a file with a misspelled key: err = %v, want one naming stop_grace_priod", err)
	}

}
