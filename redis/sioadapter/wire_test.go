package sioadapter

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// wireTestMap is a map of n int64 fields and its msgpack encoding.
func wireTestMap(t *testing.T, n int) (map[string]any, []byte) {
	t.Helper()
	in := map[string]any{}
	for i := range n {
		in[fmt.Sprintf("f%d", i)] = int64(i)
	}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return in, b
}

// extendWireMap leaves a map that takes one more field: appending a value
// gives a map that decodes to the old fields plus the new one, whatever
// size of map header the old one had.
func TestExtendWireMap(t *testing.T) {
	const id = "1764168000000-12"
	value := append([]byte{0xd9, byte(len(id))}, id...) // as recordPublishScript appends it
	for _, n := range []int{0, 3, 14, 15, 16, 40} {
		t.Run(fmt.Sprintf("%d fields", n), func(t *testing.T) {
			in, b := wireTestMap(t, n)
			ext, err := extendWireMap(b, "z")
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]any
			if err := msgpack.Unmarshal(append(ext, value...), &out); err != nil {
				t.Fatalf("the extended map does not decode: %v", err)
			}
			for k, v := range out {
				if x, ok := v.(int8); ok { // msgpack's smallest ints
					out[k] = int64(x)
				}
			}
			want := map[string]any{"z": id}
			for k, v := range in {
				want[k] = v
			}
			if !reflect.DeepEqual(out, want) {
				t.Fatalf("decoded %v, want %v", out, want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		b    []byte
		key  string
	}{
		{"an array", []byte{0x91, 0x01}, "z"},
		{"nothing", nil, "z"},
		{"a full map 16", []byte{0xde, 0xff, 0xff}, "z"},
		{"a long key", []byte{0x80}, strings.Repeat("k", 32)},
	} {
		if _, err := extendWireMap(tc.b, tc.key); err == nil {
			t.Errorf("%s: extendWireMap succeeded, want an error", tc.name)
		}
	}
}

// A broadcast encoded for recordPublishScript decodes, once the offset is
// appended, to the message with its Offset.
func TestEncodeWireWithOffset(t *testing.T) {
	m := &wireMessage{Kind: kindBroadcast, From: "n1", Nsp: "/", PacketType: 2, Data: []any{"m", "hi"}, Opts: &wireOpts{Rooms: []string{"r"}}}
	b, err := encodeWireWithOffset(m)
	if err != nil {
		t.Fatal(err)
	}
	const id = "1764168000000-0"
	var got wireMessage
	if err := decodeWire(append(b, append([]byte{0xd9, byte(len(id))}, id...)...), &got); err != nil {
		t.Fatal(err)
	}
	want := *m
	want.Offset = id
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	if _, err := encodeWireWithOffset(&want); err == nil {
		t.Error("a message with an offset was encoded for another one")
	}
}

// A stored broadcast's message takes two more fields, the id and then the
// offset (StoredBroadcastLua appends both), across every map header size.
func TestStoredBroadcastWireFields(t *testing.T) {
	str := func(s string) []byte { return append([]byte{0xd9, byte(len(s))}, s...) }
	const id, offset = "1764168000000-3", "1764168000001-7"
	for _, n := range []int{0, 13, 14, 15, 40} {
		t.Run(fmt.Sprintf("%d fields", n), func(t *testing.T) {
			_, b := wireTestMap(t, n)
			head, err := extendWireMap(b, "i")
			if err == nil {
				head, err = growWireMap(head)
			}
			if err != nil {
				t.Fatal(err)
			}
			full := append(append(append(head, str(id)...), 0xa1, 'z'), str(offset)...)
			var out map[string]any
			if err := msgpack.Unmarshal(full, &out); err != nil {
				t.Fatalf("the message does not decode: %v", err)
			}
			if len(out) != n+2 || out["i"] != id || out["z"] != offset {
				t.Errorf("decoded %d fields, i=%v, z=%v; want %d, %s, %s", len(out), out["i"], out["z"], n+2, id, offset)
			}
		})
	}
}

// setArgID, which receivers run on what another instance sent, sets the id
// only in a map argument past the event name, and declines the rest
// without failing.
func TestSetArgID(t *testing.T) {
	m := map[string]any{}
	data := []any{"message", m, "text"}
	for _, idArg := range []int{-1, 0, 2, 3, 255} {
		if setArgID(data, idArg, "1-0") {
			t.Errorf("setArgID(%d) set an id in %#v", idArg, data)
		}
	}
	if !setArgID(data, 1, "1-0") || m["id"] != "1-0" {
		t.Errorf("setArgID(1) left %#v", m)
	}
	if setArgID(nil, 1, "1-0") {
		t.Error("setArgID set an id in no data")
	}
}
