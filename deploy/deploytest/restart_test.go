package deploytest

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestLoopbackRestart: `restart DIR I` stops one instance with SIGTERM, reports how it
// exited, and starts it again on its port with the environment `start` had, leaving the
// others alone; an instance that crashed is revived and its exit status reported as a failure.
func TestLoopbackRestart(t *testing.T) {
	nginxBin(t)
	requireRedisServer(t)
	fake := fakeChatd(t)
	dir := t.TempDir()
	env, _ := startLoopback(t, dir, cleanEnv("CHATD_LOG_LEVEL=debug"), "--chatd", fake)
	urls := strings.Split(env["CHATD_URLS"], ",")
	ports := strings.Split(env["CHATD_PORTS"], ",")
	before := pids(t, env["CHATD_PIDS"])

	readEnv := func() map[string]string {
		b, err := os.ReadFile(filepath.Join(dir, "env"))
		if err != nil {
			t.Fatal(err)
		}
		return parseEnvFile(string(b))
	}
	envOf := func(url string) map[string]string {
		_, body := httpGet(t, url+"/env")
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s/env: %v: %s", url, err, body)
		}
		return got
	}

	// A CHATD_ variable of the caller of restart does not reach the new instance.
	r := loopback(t, cleanEnv("CHATD_LOG_LEVEL=error"), "restart", dir, "2")
	if r.code != 0 {
		t.Fatalf("restart 2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := "chatd2: pid " + strconv.Itoa(before[1]) + " exited with status 0"; !strings.Contains(r.stdout, want) {
		t.Errorf("restart 2 printed %q, want it to say %q", r.stdout, want)
	}
	afterEnv := readEnv()
	after := pids(t, afterEnv["CHATD_PIDS"])
	if len(after) != 3 || after[0] != before[0] || after[2] != before[2] || after[1] == before[1] {
		t.Fatalf("CHATD_PIDS %v -> %v: want only the second to change", before, after)
	}
	if processRuns(before[1]) {
		t.Errorf("the old chatd2 (pid %d) still runs", before[1])
	}
	for k, v := range env {
		if k != "CHATD_PIDS" && afterEnv[k] != v {
			t.Errorf("restart changed %s from %q to %q", k, v, afterEnv[k])
		}
	}
	if _, who := httpGet(t, urls[1]+"/whoami"); who != "chatd2" {
		t.Errorf("%s/whoami after restart = %q, want chatd2", urls[1], who)
	}
	got := envOf(urls[1])
	for k, v := range map[string]string{
		"CHATD_LISTEN":      "127.0.0.1:" + ports[1],
		"CHATD_REDIS_URL":   env["REDIS_URL"],
		"CHATD_INSTANCE_ID": "chatd2",
		"CHATD_LOG_LEVEL":   "debug",
		"CHATD_LOG_FORMAT":  "json",
	} {
		if got[k] != v {
			t.Errorf("restarted chatd2: %s = %q, want %q", k, got[k], v)
		}
	}
	if status, _ := httpGet(t, env["LB_URL"]+"/readyz"); status != http.StatusOK {
		t.Errorf("LB /readyz after restart = %d", status)
	}

	// chatd3 crashes; restart reports its status and brings it back.
	if err := syscall.Kill(before[2], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = loopback(t, cleanEnv(), "restart", dir, "3")
	if r.code == 0 || !strings.Contains(r.stderr, "chatd3 (pid "+strconv.Itoa(before[2])+") exited with status 137") {
		t.Errorf("restart of a crashed instance: exit %d, stderr %q; want a failure naming status 137", r.code, r.stderr)
	}
	if _, who := httpGet(t, urls[2]+"/whoami"); who != "chatd3" {
		t.Errorf("%s/whoami after reviving chatd3 = %q", urls[2], who)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"restart", dir}, "usage: loopback.sh restart DIR I"},
		{[]string{"restart", dir, "0"}, "instance must be between 1 and 3, not '0'"},
		{[]string{"restart", dir, "4"}, "instance must be between 1 and 3, not '4'"},
		{[]string{"restart", dir, "two"}, "instance must be between 1 and 3, not 'two'"},
		{[]string{"restart", t.TempDir(), "1"}, "nothing runs in"},
		{[]string{"restart", filepath.Join(dir, "nope"), "1"}, "no such folder"},
	} {
		if r := loopback(t, cleanEnv(), tt.args...); r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want a failure saying %q", tt.args, r.code, r.stderr, tt.want)
		}
	}

	if s := loopback(t, cleanEnv(), "stop", dir); s.code != 0 {
		t.Fatalf("stop: exit %d: %s", s.code, s.stderr)
	}
	if left := processesUnder(dir); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
}
