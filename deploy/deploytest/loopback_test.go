package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// binaries built once per test run, removed by TestMain.
var bins struct {
	dir     string
	fakeOK  sync.Once
	fake    string
	fakeErr error
	realOK  sync.Once
	real    string
	realErr error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

func binDir() (string, error) {
	if bins.dir == "" {
		d, err := os.MkdirTemp("", "chatd-deploytest-")
		if err != nil {
			return "", err
		}
		bins.dir = d
	}
	return bins.dir, nil
}

func goBuild(pkg, out, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// fakeChatd builds testdata/fakechatd, a stand-in that needs nothing of chatd's code.
func fakeChatd(t *testing.T) string {
	t.Helper()
	bins.fakeOK.Do(func() {
		dir, err := binDir()
		if err != nil {
			bins.fakeErr = err
			return
		}
		statAll([]string{"testdata/fakechatd/main.go"})
		bins.fake = filepath.Join(dir, "fakechatd")
		bins.fakeErr = goBuild("./testdata/fakechatd", bins.fake, ".")
	})
	if bins.fakeErr != nil {
		t.Fatal(bins.fakeErr)
	}
	return bins.fake
}

// realChatd builds ./cmd/chatd; it skips while the command does not exist or does not
// build (the packages' own tests report that).
func realChatd(t *testing.T) string {
	t.Helper()
	mainGoFiles(t)
	bins.realOK.Do(func() {
		dir, err := binDir()
		if err != nil {
			bins.realErr = err
			return
		}
		bins.real = filepath.Join(dir, "chatd")
		root := repoRoot(t)
		statAll(moduleFilesOfChatd(root))
		bins.realErr = goBuild("./cmd/chatd", bins.real, root)
	})
	if bins.realErr != nil {
		t.Skipf("./cmd/chatd does not build yet: %v", bins.realErr)
	}
	return bins.real
}

// cleanEnv is the test process environment without CHATD_* variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHATD_") && !strings.HasPrefix(kv, "LOOPBACK_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

type scriptResult struct {
	stdout, stderr string
	code           int
}

// loopback runs deploy/loopback.sh with args and env, bounded by two minutes.
func loopback(t *testing.T, env []string, args ...string) scriptResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{loopbackScript(t)}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := scriptResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("loopback.sh %v: %v", args, err)
	}
	return r
}

// startLoopback runs `loopback.sh start dir` and registers `stop dir` for the end of the test.
func startLoopback(t *testing.T, dir string, env []string, args ...string) (map[string]string, scriptResult) {
	t.Helper()
	r := loopback(t, env, append([]string{"start", dir}, args...)...)
	t.Cleanup(func() {
		if s := loopback(t, env, "stop", dir); s.code != 0 {
			t.Errorf("loopback.sh stop: exit %d: %s", s.code, s.stderr)
		}
	})
	if r.code != 0 {
		t.Fatalf("loopback.sh start: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	return parseEnvFile(string(b)), r
}

func parseEnvFile(text string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// pids parses a comma-separated list of process ids.
func pids(t *testing.T, list string) []int {
	t.Helper()
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("pid %q: %v", s, err)
		}
		out = append(out, n)
	}
	return out
}

// processesUnder lists the live processes whose command line or working folder is inside
// dir: what a run in dir started and did not stop.
func processesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !processRuns(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if bytes.Contains(cmdline, []byte(dir)) || strings.HasPrefix(cwd, dir) {
			out = append(out, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return out
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}

// TestLoopbackStartStop starts the topology with a stand-in chatd and checks the env file,
// that each instance got its own port, id and the private Redis, that nginx balances them
// with stickiness, and that stop leaves nothing running.
func TestLoopbackStartStop(t *testing.T) {
	nginxBin(t)
	requireRedisServer(t)
	fake := fakeChatd(t)
	dir := t.TempDir()
	env, r := startLoopback(t, dir, cleanEnv("CHATD_LOG_LEVEL=debug"), "--chatd", fake, "--print-env")

	if got := parseEnvFile(r.stdout); fmt.Sprint(got) != fmt.Sprint(env) {
		t.Errorf("--print-env printed %v, env file has %v", got, env)
	}
	for _, k := range []string{"LB_URL", "LB_PORT", "REDIS_URL", "REDIS_PORT", "REDIS_PID", "CHATD_URLS", "CHATD_PORTS", "CHATD_PIDS", "CHATD_INSTANCE_IDS", "NGINX_PID", "LOG_DIR"} {
		if env[k] == "" {
			t.Errorf("env file has no %s:\n%v", k, env)
		}
	}
	if env["LB_URL"] != "http://127.0.0.1:"+env["LB_PORT"] {
		t.Errorf("LB_URL %q does not match LB_PORT %q", env["LB_URL"], env["LB_PORT"])
	}
	if err := redisPing("127.0.0.1:" + env["REDIS_PORT"]); err != nil {
		t.Errorf("private Redis: %v", err)
	}
	if env["REDIS_PORT"] == "6379" {
		t.Error("the run uses the shared Redis port 6379, not a private one")
	}

	urls := strings.Split(env["CHATD_URLS"], ",")
	ids := strings.Split(env["CHATD_INSTANCE_IDS"], ",")
	ports := strings.Split(env["CHATD_PORTS"], ",")
	if len(urls) != 3 || len(ids) != 3 || len(ports) != 3 || len(pids(t, env["CHATD_PIDS"])) != 3 {
		t.Fatalf("want three instances: %v", env)
	}
	for i, u := range urls {
		if _, who := httpGet(t, u+"/whoami"); who != ids[i] {
			t.Errorf("%s/whoami = %q, want %q", u, who, ids[i])
		}
		_, body := httpGet(t, u+"/env")
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"CHATD_LISTEN":      "127.0.0.1:" + ports[i],
			"CHATD_REDIS_URL":   env["REDIS_URL"],
			"CHATD_INSTANCE_ID": ids[i],
			"CHATD_LOG_FORMAT":  "json",
			"CHATD_LOG_LEVEL":   "debug", // the caller's setting
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", ids[i], k, got[k], v)
			}
		}
	}

	first := ""
	for i := 0; i < 6; i++ {
		status, who := httpGet(t, env["LB_URL"]+"/whoami")
		if status != http.StatusOK || !slices.Contains(ids, who) {
			t.Fatalf("LB /whoami: %d %q", status, who)
		}
		if first == "" {
			first = who
		} else if who != first {
			t.Errorf("one client reached %s and %s through the LB: not sticky", first, who)
		}
	}
	if status, _ := httpGet(t, env["LB_URL"]+"/readyz"); status != http.StatusOK {
		t.Errorf("LB /readyz = %d", status)
	}

	if s := loopback(t, cleanEnv(), "stop", dir); s.code != 0 {
		t.Fatalf("stop: exit %d: %s", s.code, s.stderr)
	}
	all := append(pids(t, env["CHATD_PIDS"]), pids(t, env["REDIS_PID"]+","+env["NGINX_PID"])...)
	for _, pid := range all {
		if processRuns(pid) {
			t.Errorf("pid %d still runs after stop", pid)
		}
	}
	if left := processesUnder(dir); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
	if !dialRefused("127.0.0.1:" + env["LB_PORT"]) {
		t.Error("the LB port still accepts connections after stop")
	}
	if s := loopback(t, cleanEnv(), "stop", dir); s.code != 0 {
		t.Errorf("second stop: exit %d: %s", s.code, s.stderr)
	}
}

// TestLoopbackStartFailure: a chatd that cannot start makes start fail with its log, and
// what was already started (Redis) is stopped.
func TestLoopbackStartFailure(t *testing.T) {
	nginxBin(t)
	requireRedisServer(t)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken-chatd")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'config: listen: bad address' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	r := loopback(t, cleanEnv(), "start", run, "--chatd", broken)
	if r.code == 0 {
		t.Fatal("start succeeded with a chatd that exits at once")
	}
	for _, want := range []string{"chatd1", "exited before it was ready", "config: listen: bad address"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if left := processesUnder(run); len(left) > 0 {
		t.Errorf("processes left after a failed start: %v", left)
	}
	if _, err := os.Stat(filepath.Join(run, "env")); err == nil {
		t.Error("a failed start wrote the env file")
	}
}

func TestLoopbackUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"launch"}, "unknown command 'launch'"},
		{[]string{"start"}, "no folder given"},
		{[]string{"start", dir, "--instances", "0"}, "--instances must be between 1 and 16"},
		{[]string{"start", dir, "--instances"}, "--instances needs a number"},
		{[]string{"start", dir, "--frobnicate"}, "unknown option --frobnicate"},
		{[]string{"start", dir, "--chatd", filepath.Join(dir, "missing")}, "is not an executable file"},
		{[]string{"stop", filepath.Join(dir, "nope")}, "no such folder"},
		{[]string{"nginx-conf", filepath.Join(dir, "c"), "eighty", "3001"}, "LB port 'eighty' is not a number"},
		{[]string{"nginx-conf", filepath.Join(dir, "c"), "8080", "3001", "x"}, "chatd port 'x' is not a number"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if slices.Contains(tt.args, "start") && slices.Contains(tt.args, "--chatd") {
				nginxBin(t)
				requireRedisServer(t)
			}
			r := loopback(t, cleanEnv(), tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, tt.want)
			}
		})
	}
	if left := processesUnder(dir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestLoopbackRun: `run` starts everything in a temporary folder, prints the env and stops
// and removes everything on SIGTERM.
func TestLoopbackRun(t *testing.T) {
	nginxBin(t)
	requireRedisServer(t)
	fake := fakeChatd(t)
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", loopbackScript(t), "run", "--chatd", fake)
	cmd.Env = cleanEnv("TMPDIR=" + tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "chatd behind nginx: ") {
			break
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	if env["LB_URL"] == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("run printed no LB_URL; stderr:\n%s", stderr.String())
	}
	if status, _ := httpGet(t, env["LB_URL"]+"/readyz"); status != http.StatusOK {
		t.Errorf("LB /readyz = %d", status)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("run after SIGTERM: %v\n%s", err, stderr.String())
	}
	if left := processesUnder(tmp); len(left) > 0 {
		t.Errorf("processes left after run ended: %v", left)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("run left %v in TMPDIR", entries)
	}
	if !dialRefused("127.0.0.1:" + env["LB_PORT"]) {
		t.Error("the LB port still accepts connections after run ended")
	}
}

// TestLoopbackRealChatd runs the real chatd three times behind nginx: health and readiness
// through the load balancer, a socket.io handshake, JSON logs, and the `chatd healthcheck`
// that the compose file and the image use.
func TestLoopbackRealChatd(t *testing.T) {
	nginxBin(t)
	requireRedisServer(t)
	chatd := realChatd(t)
	dir := t.TempDir()
	env, _ := startLoopback(t, dir, cleanEnv(), "--chatd", chatd)

	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := httpGet(t, env["LB_URL"]+path); status != http.StatusOK {
			t.Errorf("LB %s = %d %s", path, status, body)
		}
	}
	// A socket.io handshake through the LB answers an Engine.IO open packet.
	testkit.PollHandshake(t, env["LB_URL"]+"/socket.io/?EIO=4&transport=polling")

	log, err := os.ReadFile(filepath.Join(env["LOG_DIR"], "chatd1.log"))
	if err != nil {
		t.Fatal(err)
	}
	firstLine, _, _ := strings.Cut(string(log), "\n")
	if !json.Valid([]byte(firstLine)) {
		t.Errorf("chatd1's log is not JSON (CHATD_LOG_FORMAT=json): %q", firstLine)
	}

	port := strings.Split(env["CHATD_PORTS"], ",")[0]
	healthcheck := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chatd, "healthcheck")
		// As in the compose containers: the listen address without a host,
		// and dev mode open to other machines on purpose.
		cmd.Env = cleanEnv("CHATD_LISTEN=:"+port, "CHATD_AUTH_DEV_INSECURE=true")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := healthcheck(); err != nil {
		t.Errorf("chatd healthcheck against a serving chatd: %v\n%s", err, out)
	}
	if s := loopback(t, cleanEnv(), "stop", dir); s.code != 0 {
		t.Fatalf("stop: exit %d: %s", s.code, s.stderr)
	}
	if out, err := healthcheck(); err == nil {
		t.Errorf("chatd healthcheck succeeded with nothing listening:\n%s", out)
	}
	if left := processesUnder(dir); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
}
