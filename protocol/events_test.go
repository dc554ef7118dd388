package protocol

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// documentedRequests reads the request events of docs/protocol.md: the
// first column of the table whose header is "event | payload | answer |
// effect", with the names in backticks.
func documentedRequests(t *testing.T) []string {
	t.Helper()
	path := filepath.Join("..", "docs", "protocol.md")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the protocol document must exist beside the code: %v", err)
	}
	defer f.Close()
	var names []string
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := tableCells(sc.Text())
		switch {
		case cells == nil:
			if inTable {
				return names
			}
		case !inTable:
			if len(cells) >= 4 && strings.EqualFold(cells[0], "event") && strings.EqualFold(cells[1], "payload") &&
				strings.EqualFold(cells[2], "answer") && strings.EqualFold(cells[3], "effect") {
				inTable = true
			}
		case strings.Trim(cells[0], "-: ") == "":
			// the |---|---| line
		default:
			name := cells[0]
			if !strings.HasPrefix(name, "`") || !strings.HasSuffix(name, "`") || len(name) < 3 {
				t.Errorf("%s: request event %q is not written in backticks", path, name)
				continue
			}
			names = append(names, strings.Trim(name, "`"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !inTable {
		t.Fatalf("%s has no table with the columns event | payload | answer | effect", path)
	}
	return names
}

// tableCells splits a Markdown table row into trimmed cells; nil when the
// line is not a row.
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") {
		return nil
	}
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	cells := strings.Split(line, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// The request table is the one the protocol document shows users: the same
// events, in the same order.
func TestRequestsMatchTheProtocolDocument(t *testing.T) {
	doc := documentedRequests(t)
	if got := RequestNames(); !slices.Equal(got, doc) {
		t.Fatalf("protocol.Requests = %v, docs/protocol.md lists %v", got, doc)
	}
}

func TestReservedNames(t *testing.T) {
	for _, name := range []string{"join", "session", "presence", "connect", "disconnecting"} {
		if !slices.Contains(ReservedEvents(), name) {
			t.Errorf("%q is not reserved", name)
		}
	}
	for _, name := range []string{"notice", "push", "membership", "rpc"} {
		if slices.Contains(ReservedEvents(), name) {
			t.Errorf("%q is reserved, want it free for custom events", name)
		}
	}
	if got, want := RequestList(), "join, leave, message, typing, history, sync, rooms, presence, refresh and rpc"; got != want {
		t.Errorf("RequestList() = %q, want %q", got, want)
	}
}
