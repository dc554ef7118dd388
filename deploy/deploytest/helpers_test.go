package deploytest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// repoRoot is the module root: the folder with go.mod two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", root, err)
	}
	return root
}

// loopbackScript returns the path of deploy/loopback.sh. It stats the file so that go test's
// result cache notices when the script changes (bash reads it, not this process).
func loopbackScript(t *testing.T) string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "deploy", "loopback.sh")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// statAll stats every file so that go test's result cache depends on them: files that only
// a child process (go build, bash) reads are otherwise invisible to it.
func statAll(paths []string) {
	for _, p := range paths {
		_, _ = os.Stat(p)
	}
}

// nginxBin returns Debian's nginx, or skips the test when it is not installed.
func nginxBin(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	t.Skip("nginx is not installed (Debian package nginx): skipping the load balancer test")
	return ""
}

// requireRedisServer makes sure redis-server is installed, which
// deploy/loopback.sh starts: see testkit.RequireRedisServer for what happens
// when it is not.
func requireRedisServer(t *testing.T) {
	t.Helper()
	testkit.RequireRedisServer(t)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// processRuns reports whether pid is a live process (a zombie counts as gone: on this
// machine nobody may reap orphans).
func processRuns(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndex(s, ") ")
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z'
}

// dialRefused reports whether a TCP connection to addr is refused.
func dialRefused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		return false
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}
