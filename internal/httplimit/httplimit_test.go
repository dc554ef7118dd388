package httplimit

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	proxies, err := ParseProxies([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"direct client lying about XFF", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"through a trusted proxy", "10.1.2.3:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-written entries to the left are ignored", "10.1.2.3:80", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted hops", "[::1]:80", []string{"198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"several headers", "10.1.2.3:80", []string{"1.1.1.1", "198.51.100.8"}, "198.51.100.8"},
		{"trusted proxy without XFF", "10.1.2.3:80", nil, "10.1.2.3"},
		{"garbage hop", "10.1.2.3:80", []string{"nonsense"}, "10.1.2.3"},
		{"v4-mapped peer", "[::ffff:203.0.113.9]:5000", nil, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := proxies.ClientAddr(r); got != tt.want {
				t.Fatalf("ClientAddr = %q, want %q", got, tt.want)
			}
		})
	}
	var none Proxies
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:80"
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := none.ClientAddr(r); got != "10.1.2.3" {
		t.Fatalf("no trusted proxies: ClientAddr = %q", got)
	}
}

func TestParseProxiesNamesTheBadEntry(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "example.com", ""} {
		if _, err := ParseProxies([]string{"10.0.0.1", bad}); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("ParseProxies(%q) = %v", bad, err)
		}
	}
}

func TestFailures(t *testing.T) {
	now := time.Unix(1000, 0)
	f := NewFailures(1, 3)
	f.now = func() time.Time { return now }
	for i := range 3 {
		if _, blocked := f.Blocked("a"); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		f.Fail("a")
	}
	wait, blocked := f.Blocked("a")
	if !blocked || wait <= 0 || wait > time.Second {
		t.Fatalf("after 3 failures: blocked=%v wait=%v", blocked, wait)
	}
	if _, blocked := f.Blocked("b"); blocked {
		t.Fatal("another address is blocked too")
	}
	now = now.Add(time.Second)
	if _, blocked := f.Blocked("a"); blocked {
		t.Fatal("still blocked after a token came back")
	}
	now = now.Add(2 * failureSweepEvery)
	f.Fail("b")
	if f.Len() != 1 {
		t.Fatalf("remembers %d addresses, want 1 (a's budget is full again)", f.Len())
	}
}

// TestBodyTimeoutCutsASlowBody sends a body that never ends: the server
// gives up at the timeout, while a request without a body may take longer.
func TestBodyTimeoutCutsASlowBody(t *testing.T) {
	const limit = 300 * time.Millisecond
	readErr := make(chan error, 1)
	h := BodyTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			time.Sleep(2 * limit) // a long poll: no body, no deadline
			_, _ = io.WriteString(w, "polled")
			return
		}
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err == nil {
			time.Sleep(2 * limit) // the answer may take longer than the body limit
			_, _ = io.WriteString(w, "read")
		}
	}), limit)
	ts := httptest.NewServer(h)
	defer ts.Close()

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the body was read although it never ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the slow body was not cut")
	}
	if took := time.Since(start); took < limit || took > limit+2*time.Second {
		t.Fatalf("cut after %v, want about %v", took, limit)
	}

	res, err := http.Post(ts.URL, "text/plain", strings.NewReader("whole body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(b) != "read" {
		t.Fatalf("a complete body answered slowly: %q", b)
	}
	t.Logf("the handler read the complete body: %v", <-readErr)
	res, err = http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "polled" {
		t.Fatalf("a GET longer than the body limit: %q", b)
	}
}

func TestRates(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRates(2, 2)
	r.now = func() time.Time { return now }
	for i, want := range []bool{true, true, false} {
		if got := r.Allow("a"); got != want {
			t.Fatalf("request %d allowed = %v, want 2 allowed at once, then a refusal", i+1, got)
		}
	}
	if !r.Allow("b") {
		t.Fatal("another address is refused")
	}
	now = now.Add(500 * time.Millisecond)
	if !r.Allow("a") {
		t.Fatal("a token did not come back after 1/rate")
	}
	now = now.Add(2 * failureSweepEvery)
	r.Allow("c")
	if r.Len() != 1 {
		t.Fatalf("remembers %d addresses, want 1", r.Len())
	}
}
