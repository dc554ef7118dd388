package apigateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/hooks"
	"github.com/chatd/chatd/rooms"
)

func TestDecodeReply(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		status   int
		wantBody string
	}{
		{`{"statusCode":200}`, true, 200, ""},
		{`{"statusCode":403,"body":"go away"}`, true, 403, "go away"},
		{`{"statusCode":200,"body":{"a":1}}`, true, 200, `{"a":1}`},
		{`{"statusCode":"200"}`, false, 0, ""},
		{`{"statusCode":2000}`, false, 0, ""},
		{`{"statusCode":200.5}`, false, 0, ""},
		{`{}`, false, 0, ""},
		{`null`, false, 0, ""},
		{`not json`, false, 0, ""},
	} {
		r, err := decodeReply([]byte(tc.in))
		if tc.ok != (err == nil) || r.StatusCode != tc.status || r.Body != tc.wantBody {
			t.Errorf("decodeReply(%s) = %+v, %v", tc.in, r, err)
		}
	}
}

func TestEvents(t *testing.T) {
	events := make(chan map[string]any, 3)
	var status atomic.Int64
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		events <- ev
		_, _ = io.WriteString(w, `{"statusCode":`+itoa(int(status.Load()))+`}`)
	}))
	defer srv.Close()
	caller, err := hooks.NewCaller(hooks.CallerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{URL: srv.URL, DomainName: "chat.example.com", Stage: "production", Timeout: time.Second, Headers: []string{"User-Agent"}}, caller, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := Conn{
		ID: "sock1", ConnectedAt: time.UnixMilli(1700000000000), SourceIP: "192.0.2.1", UserAgent: "test",
		Headers: http.Header{"User-Agent": {"test"}, "Cookie": {"secret"}},
		Query:   url.Values{"EIO": {"4"}, "transport": {"websocket"}, "room": {"a"}},
	}
	if err := c.Connect(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	ev := <-events
	rc := ev["requestContext"].(map[string]any)
	if rc["routeKey"] != "$connect" || rc["eventType"] != "CONNECT" || rc["connectionId"] != "sock1" ||
		rc["domainName"] != "chat.example.com" || rc["stage"] != "production" || rc["connectedAt"] != float64(1700000000000) {
		t.Fatalf("$connect requestContext = %v", rc)
	}
	if h := ev["headers"].(map[string]any); h["User-Agent"] != "test" || h["Cookie"] != nil {
		t.Fatalf("$connect headers = %v, want User-Agent only", h)
	}
	if q := ev["queryStringParameters"].(map[string]any); q["room"] != "a" || q["EIO"] != nil || len(q) != 1 {
		t.Fatalf("$connect query = %v", q)
	}

	r, err := c.Default(context.Background(), Conn{ID: "sock1"}, "action", `{"action":"GET_CONNECTION_ID"}`)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("Default = %+v, %v", r, err)
	}
	ev = <-events
	rc = ev["requestContext"].(map[string]any)
	if rc["routeKey"] != "$default" || rc["eventType"] != "MESSAGE" || rc["messageId"] == "" || ev["body"] != `{"action":"GET_CONNECTION_ID"}` || ev["isBase64Encoded"] != false {
		t.Fatalf("$default event = %v", ev)
	}

	c.Disconnect(Conn{ID: "sock1"}, 1001, "transport close")
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev = <-events
	rc = ev["requestContext"].(map[string]any)
	if rc["routeKey"] != "$disconnect" || rc["eventType"] != "DISCONNECT" || rc["disconnectStatusCode"] != float64(1001) {
		t.Fatalf("$disconnect requestContext = %v", rc)
	}

	status.Store(403)
	err = c.Connect(context.Background(), conn)
	if e := rooms.ErrorOf(err); e == nil || e.Code != rooms.CodeUnauthorized {
		t.Fatalf("Connect answered 403 = %v, want unauthorized", err)
	}
	<-events
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Sockets may still go while a shutdown's Close waits for the $disconnect
// posts; under the race detector this repeats the overlap.
func TestDisconnectDuringClose(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		posts.Add(1)
		_, _ = w.Write([]byte(`{"statusCode":200}`))
	}))
	defer srv.Close()
	caller, err := hooks.NewCaller(hooks.CallerConfig{Secret: []byte("0123456789abcdef0123456789abcdef")}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 50
	for i := range rounds {
		c, err := New(Config{URL: srv.URL, DomainName: "chat.example.com", Stage: "production", Timeout: time.Second}, caller, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Disconnect(Conn{ID: "s"}, 1001, "transport close")
		}()
		if err := c.Close(context.Background()); err != nil {
			t.Fatalf("round %d: Close = %v", i, err)
		}
		<-done
	}
	deadline := time.Now().Add(5 * time.Second)
	for posts.Load() < rounds && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := posts.Load(); got != rounds {
		t.Errorf("%d $disconnect posts arrived, want %d", got, rounds)
	}
}
