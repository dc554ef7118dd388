package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/config"
)

func TestMetricsOnTheirOwnListener(t *testing.T) {
	cfg := testConfig("metrics-listen")
	cfg.Metrics.Listen = "127.0.0.1:0"
	m, base := startMain(t, cfg)
	if status, body := get(t, base+"/metrics"); status == http.StatusOK && strings.Contains(body, "chatd_sockets") {
		t.Fatalf("/metrics is still served on listen")
	}
	if m.MetricsAddr() == nil {
		t.Fatal("no metrics listener")
	}
	status, body := get(t, "http://"+m.MetricsAddr().String()+"/metrics")
	if status != http.StatusOK || !strings.Contains(body, "chatd_sockets") || !strings.Contains(body, "chatd_limit_refusals_total") {
		t.Fatalf("metrics listener: %d %.200s", status, body)
	}
}

// rawConn opens a TCP connection to base's listener.
func rawConn(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// closedWithin waits until the server closes conn (reading and dropping
// whatever it answers before) and returns how long that took.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, conn)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", limit)
	}
	return took
}

func TestHTTPTimeoutsCutSlowClients(t *testing.T) {
	cfg := testConfig("http-timeouts")
	cfg.HTTP.BodyTimeout = 400 * time.Millisecond
	cfg.HTTP.HeaderTimeout = 400 * time.Millisecond
	cfg.HTTP.IdleTimeout = 400 * time.Millisecond
	_, base := startMain(t, cfg)

	t.Run("a polling POST whose body never comes", func(t *testing.T) {
		conn := rawConn(t, base)
		_, _ = io.WriteString(conn, "POST /socket.io/?EIO=4&transport=polling&sid=nosuch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n4")
		if took := closedWithin(t, conn, 5*time.Second); took > 3*time.Second {
			t.Fatalf("cut after %v", took)
		}
	})
	t.Run("an API body sent a byte at a time", func(t *testing.T) {
		conn := rawConn(t, base)
		_, _ = io.WriteString(conn, "POST /api/v1/emit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+cfg.API.Token+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 20 {
				time.Sleep(100 * time.Millisecond) // the slow client's pace
				if _, err := io.WriteString(conn, " "); err != nil {
					return
				}
			}
		}()
		r := bufio.NewReader(conn)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err := io.Copy(io.Discard, r)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the slow body was not cut")
		}
		if took := time.Since(start); took > 1800*time.Millisecond {
			t.Fatalf("cut after %v, the client was still sending", took)
		}
		<-done
	})
	t.Run("headers that never end", func(t *testing.T) {
		conn := rawConn(t, base)
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		if took := closedWithin(t, conn, 5*time.Second); took > 3*time.Second {
			t.Fatalf("cut after %v", took)
		}
	})
	t.Run("an idle keep-alive connection", func(t *testing.T) {
		conn := rawConn(t, base)
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if took := closedWithin(t, conn, 5*time.Second); took > 3*time.Second {
			t.Fatalf("closed after %v", took)
		}
	})
	t.Run("headers over the size limit", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB header: %d, want 431", res.StatusCode)
		}
	})
}

// noAddressLimits turns off the limits per client address, for tests that
// open hundreds of sockets from loopback as fast as they can.
func noAddressLimits(cfg *config.Config) {
	cfg.Limits.HandshakesPerSecond = 0
	cfg.Limits.ConnectionsPerAddress = 0
}
