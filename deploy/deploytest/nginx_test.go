package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// renderNginxConf writes deploy/nginx/nginx.conf as loopback.sh rewrites it, listening on
// lbPort with the given chatd ports as the upstream, and returns its path.
func renderNginxConf(t *testing.T, dir string, lbPort int, ports ...int) string {
	t.Helper()
	conf := filepath.Join(dir, "nginx.conf")
	args := []string{loopbackScript(t), "nginx-conf", conf, strconv.Itoa(lbPort)}
	for _, p := range ports {
		args = append(args, strconv.Itoa(p))
	}
	out, err := exec.Command("bash", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("loopback.sh nginx-conf: %v\n%s", err, out)
	}
	return conf
}

// nginxTest runs `nginx -t` on conf with its prefix and pid file in conf's folder.
func nginxTest(t *testing.T, nginx, conf string) ([]byte, error) {
	t.Helper()
	dir := filepath.Dir(conf)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, nginx, "-t", "-e", "stderr", "-p", dir+"/", "-c", conf,
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
}

func TestNginxConfStatic(t *testing.T) {
	conf := readNginxConf(t)
	for _, want := range []string{
		`hash $remote_addr consistent;`,
		`proxy_http_version 1.1;`,
		`proxy_set_header Upgrade $http_upgrade;`,
		`proxy_set_header Connection $connection_upgrade;`,
		`map $http_upgrade $connection_upgrade`,
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	// The socket.io location must outlast a long-polling GET (25 s) and idle WebSockets.
	loc := regexp.MustCompile(`(?s)location /socket\.io/ \{(.*?)\}`).FindStringSubmatch(conf)
	if loc == nil {
		t.Fatal("nginx.conf has no `location /socket.io/` block")
	}
	// A draining chatd refuses new sessions with 403: handshakes must move on to the next
	// instance rather than hammer the draining one until it exits.
	if !regexp.MustCompile(`proxy_next_upstream\s[^;]*\bhttp_403\b[^;]*;`).MatchString(loc[1]) {
		t.Error("location /socket.io/ does not try the next instance on 403 (proxy_next_upstream ... http_403)")
	}
	for _, d := range []string{"proxy_read_timeout", "proxy_send_timeout"} {
		m := regexp.MustCompile(d + `\s+(\d+)s;`).FindStringSubmatch(loc[1])
		if m == nil {
			t.Errorf("location /socket.io/ sets no %s in seconds", d)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n < 60 {
			t.Errorf("location /socket.io/ %s = %ss, want at least 60s", d, m[1])
		}
	}
}

// TestNginxConfSyntax runs `nginx -t` on the file as loopback.sh rewrites it (Debian's nginx
// may predate the `resolve` parameter that nginx:1.27 understands; the rewrite drops it) and
// shows that nginx -t does reject a broken file.
func TestNginxConfSyntax(t *testing.T) {
	nginx := nginxBin(t)
	dir := t.TempDir()
	conf := renderNginxConf(t, dir, freePort(t), 3001, 3002, 3003)
	if out, err := nginxTest(t, nginx, conf); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	rendered, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"3001", "3002", "3003"} {
		if !strings.Contains(string(rendered), "server 127.0.0.1:"+p+" max_fails=1 fail_timeout=10s;") {
			t.Errorf("rendered conf has no upstream server for port %s:\n%s", p, rendered)
		}
	}
	if strings.Contains(string(rendered), "chatd1:") || strings.Contains(string(rendered), "listen 80;") {
		t.Errorf("rendered conf still has compose host names or port 80:\n%s", rendered)
	}

	// A directive nginx does not know, to see that nginx -t really checks.
	const unknown = "proxy_http_vers1on"
	broken := filepath.Join(dir, "broken.conf")
	if err := os.WriteFile(broken, bytes.Replace(rendered, []byte("proxy_http_version 1.1;"), []byte(unknown+" 1.1;"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := nginxTest(t, nginx, broken); err == nil || !strings.Contains(string(out), unknown) {
		t.Errorf("nginx -t accepted a misspelled directive: %v\n%s", err, out)
	}
}

// backend is a stand-in chatd instance behind nginx.
type backend struct {
	name     string
	srv      *httptest.Server
	port     int
	draining atomic.Bool // refuse new socket.io sessions with 403, as a draining chatd does
}

// backendReply is what a backend answers to a plain request.
type backendReply struct {
	Backend   string
	BodyBytes int
	Header    http.Header
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.draining.Load() && strings.HasPrefix(r.URL.Path, "/socket.io/") && r.URL.Query().Get("sid") == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"code":4,"message":"this instance is shutting down"}`)
			return
		}
		if r.Header.Get("Upgrade") != "" {
			b.upgrade(w, r)
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(backendReply{Backend: b.name, BodyBytes: int(n), Header: r.Header})
	}))
	b.port = b.srv.Listener.Addr().(*net.TCPAddr).Port
	return b
}

// upgrade answers a WebSocket upgrade with 101 and then echoes bytes, as a socket.io
// WebSocket would carry frames; it refuses when nginx did not pass the upgrade headers on.
func (b *backend) upgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		http.Error(w, fmt.Sprintf("no upgrade headers: Upgrade %q Connection %q", r.Header.Get("Upgrade"), r.Header.Get("Connection")), http.StatusBadRequest)
		return
	}
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Backend: %s\r\n\r\n", b.name)
	if rw.Flush() != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		n, err := rw.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startNginx runs nginx in the foreground with conf, stopping it when the test ends, and
// waits until it answers /lb-healthz.
func startNginx(t *testing.T, nginx, conf string, lbPort int) {
	t.Helper()
	dir := filepath.Dir(conf)
	var stderr bytes.Buffer
	cmd := exec.Command(nginx, "-e", "stderr", "-p", dir+"/", "-c", conf,
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	cmd.Stdout = io.Discard
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			_ = err // nginx ends with a signal status; only its end matters here
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Logf("nginx killed: %v", <-exited)
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/lb-healthz", lbPort)
	testkit.Eventually(t, 15*time.Second, func() error {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}, "nginx to answer %s", url)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// clientFrom returns an HTTP client whose connections come from the loopback address
// localIP, so that nginx sees a different client address per client.
func clientFrom(localIP string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
}

func getReply(t *testing.T, c *http.Client, method, url string, body []byte) (int, backendReply) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var r backendReply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode, r
}

// TestNginxLoadBalancer runs the compose load balancer's configuration (as loopback.sh
// rewrites it) in front of three stand-in instances and checks what socket.io clients rely
// on: stickiness per client address, WebSocket upgrades, polling bodies, forwarded headers,
// and moving to another instance when one is gone.
func TestNginxLoadBalancer(t *testing.T) {
	nginx := nginxBin(t)
	backends := map[string]*backend{}
	var ports []int
	for _, name := range chatdServices {
		b := newBackend(t, name)
		t.Cleanup(b.srv.Close)
		backends[name] = b
		ports = append(ports, b.port)
	}
	lbPort := freePort(t)
	conf := renderNginxConf(t, t.TempDir(), lbPort, ports...)
	startNginx(t, nginx, conf, lbPort)
	lb := fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	polling := lb + "/socket.io/?EIO=4&transport=polling"
	local := clientFrom("127.0.0.1")

	t.Run("sticky per client address", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 12; i++ {
			status, r := getReply(t, local, http.MethodGet, polling+"&t="+strconv.Itoa(i), nil)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			seen[r.Backend]++
		}
		if len(seen) != 1 {
			t.Errorf("one client reached %v: long-polling needs every request on one instance", seen)
		}
		spread := map[string]bool{}
		for i := 1; i <= 24; i++ {
			_, r := getReply(t, clientFrom(fmt.Sprintf("127.0.0.%d", i)), http.MethodGet, polling, nil)
			spread[r.Backend] = true
		}
		if len(spread) < 2 {
			t.Errorf("24 client addresses all reached %v: the upstream does not balance", spread)
		}
	})

	t.Run("forwarded headers", func(t *testing.T) {
		_, r := getReply(t, local, http.MethodGet, polling, nil)
		if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got)
		}
		if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto = %q, want http", got)
		}
		if got := r.Header.Get("Connection"); strings.EqualFold(got, "close") {
			t.Errorf("Connection = %q: upstream keepalive is off for plain requests", got)
		}
	})

	t.Run("polling POST bodies", func(t *testing.T) {
		status, r := getReply(t, local, http.MethodPost, polling+"&sid=x", bytes.Repeat([]byte("4"), 1_500_000))
		if status != http.StatusOK || r.BodyBytes != 1_500_000 {
			t.Errorf("1.5 MB POST: status %d, backend got %d bytes", status, r.BodyBytes)
		}
		if status, _ := getReply(t, local, http.MethodPost, polling+"&sid=x", bytes.Repeat([]byte("4"), 3<<20)); status != http.StatusRequestEntityTooLarge {
			t.Errorf("3 MB POST: status %d, want 413", status)
		}
	})

	t.Run("websocket upgrade", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", lbPort), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a bound against hangs only
		req, _ := http.NewRequest(http.MethodGet, lb+"/socket.io/?EIO=4&transport=websocket", nil)
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Version", "13")
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("upgrade: status %d: %s", resp.StatusCode, body)
		}
		for _, msg := range []string{"40\n", "42[\"message\",\"hi\"]\n"} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			got, err := br.ReadString('\n')
			if err != nil || got != msg {
				t.Fatalf("echo through the tunnel = %q, %v; want %q", got, err, msg)
			}
		}
	})

	t.Run("load balancer health", func(t *testing.T) {
		resp, err := local.Get(lb + "/lb-healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/lb-healthz status %d", resp.StatusCode)
		}
	})

	t.Run("a draining instance's new sessions go elsewhere", func(t *testing.T) {
		_, r := getReply(t, local, http.MethodGet, polling, nil)
		draining := backends[r.Backend]
		if draining == nil {
			t.Fatalf("reply from unknown backend %q", r.Backend)
		}
		draining.draining.Store(true)
		defer draining.draining.Store(false)
		for i := 0; i < 3; i++ {
			status, r2 := getReply(t, local, http.MethodGet, polling, nil)
			if status != http.StatusOK || r2.Backend == draining.name {
				t.Errorf("handshake while %s drains: status %d from %q, want 200 from another instance", draining.name, status, r2.Backend)
			}
		}
		// Its sessions still reach it until it closes them.
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			status, r2 := getReply(t, local, method, polling+"&sid=existing", []byte("40"))
			if status != http.StatusOK || r2.Backend != draining.name {
				t.Errorf("%s of a session on %s while it drains: status %d from %q", method, draining.name, status, r2.Backend)
			}
		}
	})

	// Last: it stops an instance.
	t.Run("failover when an instance is gone", func(t *testing.T) {
		_, r := getReply(t, local, http.MethodGet, polling, nil)
		stuck := backends[r.Backend]
		if stuck == nil {
			t.Fatalf("reply from unknown backend %q", r.Backend)
		}
		stuck.srv.Close()
		for i := 0; i < 3; i++ {
			status, r2 := getReply(t, local, http.MethodGet, polling, nil)
			if status != http.StatusOK || r2.Backend == stuck.name {
				t.Errorf("after %s stopped: status %d from %q, want 200 from another instance", stuck.name, status, r2.Backend)
			}
		}
	})
}
