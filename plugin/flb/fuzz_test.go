package flb

import (
	"testing"
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
