package rooms

import (
	"strconv"
	"strings"
)

// User is a person as chatd knows them: an id that is stable across sockets
// and instances, and a display name.
type User struct {
	ID   string `json:"userId"`
	Name string `json:"name"`
}

// Message is one stored chat message, as it is sent to clients.
type Message struct {
	// ID orders the messages of a room: "<milliseconds>-<sequence>", as
	// Redis stream ids are. Compare ids with [ParseID] and [MessageID.Less].
	ID          string `json:"id"`
	Room        string `json:"room"`
	UserID      string `json:"userId"`
	Name        string `json:"name"`
	Text        string `json:"text"`
	TS          int64  `json:"ts"` // milliseconds since the Unix epoch
	ClientMsgID string `json:"clientMsgId,omitempty"`
}

// MessageID is a parsed message id: milliseconds and a sequence number.
type MessageID struct {
	MS  uint64
	Seq uint64
}

// ParseID parses an id of the form "<ms>-<seq>" (both decimal).
func ParseID(s string) (MessageID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok || ms == "" || seq == "" || len(s) > 41 {
		return MessageID{}, false
	}
	a, err := strconv.ParseUint(ms, 10, 64)
	if err != nil || ms[0] == '+' {
		return MessageID{}, false
	}
	b, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || seq[0] == '+' {
		return MessageID{}, false
	}
	return MessageID{MS: a, Seq: b}, true
}

// String formats the id as "<ms>-<seq>".
func (id MessageID) String() string {
	return strconv.FormatUint(id.MS, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// Less reports whether id was stored before other.
func (id MessageID) Less(other MessageID) bool {
	if id.MS != other.MS {
		return id.MS < other.MS
	}
	return id.Seq < other.Seq
}

// Query selects a page of a room's history. At most one of Before and After
// is set; both are exclusive message ids. Limit is 1 to [MaxHistoryLimit].
type Query struct {
	Before string
	After  string
	Limit  int
}

// Page is the answer to a [Query]: messages oldest first, and Gap when
// messages newer than the query's After id were dropped by the history cap,
// so that the page starts at the oldest message still kept and the client
// has missed some for good.
type Page struct {
	Messages []Message `json:"messages"`
	Gap      bool      `json:"gap,omitempty"`
}

// History page sizes.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 100
)

// Validate checks q and fills the default limit.
func (q *Query) Validate() error {
	if q.Before != "" && q.After != "" {
		return Errorf(CodeBadRequest, "give either before or after, not both")
	}
	if q.Before != "" {
		if _, ok := ParseID(q.Before); !ok {
			return Errorf(CodeBadRequest, "before must be a message id such as \"1700000000000-0\"")
		}
	}
	if q.After != "" {
		if _, ok := ParseID(q.After); !ok {
			return Errorf(CodeBadRequest, "after must be a message id such as \"1700000000000-0\"")
		}
	}
	if q.Limit == 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Limit < 1 || q.Limit > MaxHistoryLimit {
		return Errorf(CodeBadRequest, "limit must be 1 to %d", MaxHistoryLimit)
	}
	return nil
}
