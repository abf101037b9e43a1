package flb

import (
	"errors"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// FuzzDecoder feeds arbitrary chunks to the decoder: it must never panic,
// and must always make progress or stop.
func FuzzDecoder(f *testing.F) {
	am := payload(f, "alertmanager-audit.json")
	f.Add(appendRecord(f, nil, classic, eventTime, nil, am))
	f.Add(appendRecord(f, nil, v2, intTime, map[string]any{"a": "b"}, map[string]any{"log": "x"}))
	f.Add(appendRecord(f, nil, classic, floatTime, nil, []any{1, "x", nil}))
	f.Add([]byte{0x92, 0xd7, 0x00})
	f.Fuzz(func(t *testing.T, chunk []byte) {
		d := NewDecoder(chunk)
		var r Record
		for i := 0; ; i++ {
			more, err := d.Next(&r)
			if !more || i > len(chunk) {
				return
			}
			if err == nil && r.Raw == nil {
				t.Fatal("record without bytes")
			}
		}
	})
}

// FuzzSkip: skip delimits values exactly as msgp.Skip does, the reference
// it replaced.
func FuzzSkip(f *testing.F) {
	am := payload(f, "alertmanager-audit.json")
	f.Add(appendRecord(f, nil, v2, eventTime, map[string]any{"a": []any{1.5, nil, true}}, am))
	for _, seed := range [][]byte{
		{0xc7, 0x01, 0x05, 0xff}, {0xc8, 0x00, 0x01, 0x05, 0xff}, {0xd8, 0x01}, {0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0xc0},
		{0xdc, 0xff, 0xff}, {0xc1}, {0xdb, 0x00, 0x00, 0x00, 0x02, 'a', 'b', 0x01}, {0xcb, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := skip(b)
		want, werr := msgp.Skip(b)
		if errors.Is(werr, msgp.ErrRecursion) {
			return // msgp's recursion limit; skip has none
		}
		if (err == nil) != (werr == nil) || (err == nil && len(got) != len(want)) {
			t.Fatalf("skip(% x) = %d bytes left, %v; msgp.Skip: %d, %v", b, len(got), err, len(want), werr)
		}
	})
}
