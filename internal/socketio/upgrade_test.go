package socketio

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestUpgradeWriterLetsGoOfNetHTTPAfterTheHijack(t *testing.T) {
	var seen *upgradeWriter
	var afterWrite error
	var afterHeader http.Header
	h := ReleaseAfterUpgrade(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uw, ok := w.(*upgradeWriter)
		if !ok {
			t.Errorf("an upgrade request got a %T, want *upgradeWriter", w)
			return
		}
		seen = uw
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		defer c.Close()
		_, afterWrite = w.Write([]byte("late"))
		afterHeader = w.Header()
		w.WriteHeader(http.StatusTeapot) // must do nothing
		_ = c.WriteMessage(websocket.TextMessage, []byte("hello"))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Fatalf("read %q, %v; want hello", msg, err)
	}
	if seen == nil {
		t.Fatal("the handler did not run")
	}
	if seen.writer() != nil {
		t.Error("the upgrade writer still holds net/http's ResponseWriter after the hijack")
	}
	if !errors.Is(afterWrite, http.ErrHijacked) {
		t.Errorf("Write after the hijack = %v, want http.ErrHijacked", afterWrite)
	}
	if afterHeader == nil {
		t.Error("Header after the hijack is nil, want an empty map")
	}
}

func TestUpgradeWriterLeavesPlainRequestsAlone(t *testing.T) {
	h := ReleaseAfterUpgrade(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*upgradeWriter); ok {
			t.Error("a polling request got the upgrade writer")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
}
