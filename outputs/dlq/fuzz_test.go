package dlq

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/auditpipe/auditpipe/outputs"
)

// FuzzReadFile reads arbitrary bytes as a store's file: it never panics,
// and every line that is not blank comes back once, in order, with its
// bytes and number: as a letter when it is a JSON object that decodes to
// one, as a bad line otherwise. Nothing is dropped, so Replay, which
// rewrites a file from these lines, drops nothing either.
func FuzzReadFile(f *testing.F) {
	good := `{"time":"2026-11-21T09:30:00Z","output":"es","error":"rejected","event":{"id":"x"}}`
	for _, s := range []string{
		"",
		"\n\n",
		good + "\n",
		good,
		good + "\n" + good[:30] + good + "\n" + good + "\n",
		"null\n[1]\n\"s\"\n{}\n",
		"\x00\xff\xfe\r\n" + good + "\r\n",
		`{"time":"not a time"}` + "\n",
		`{"payload":"!!"}` + "\n",
		" \t" + good + " \n",
	} {
		f.Add([]byte(s))
	}
	// One file for every input: a process runs its inputs one at a time,
	// and a directory per input would make most of the cost.
	path := filepath.Join(f.TempDir(), "dlq-x.ndjson")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(path)
		if err != nil {
			t.Fatal(err)
		}
		k, off := 0, 0
		for i, raw := range bytes.Split(data, []byte("\n")) {
			start := off
			off += len(raw) + 1
			trimmed := bytes.TrimSpace(raw)
			if len(trimmed) == 0 {
				continue
			}
			if k == len(got) {
				t.Fatalf("line %d %q not returned", i+1, raw)
			}
			e := got[k]
			k++
			if e.Line != i+1 || e.off != start || !bytes.Equal(e.raw, raw) || e.File != path {
				t.Fatalf("entry %d is line %d at %d %q, want line %d at %d %q", k, e.Line, e.off, e.raw, i+1, start, raw)
			}
			var want outputs.DeadLetter
			isLetter := trimmed[0] == '{' && json.Unmarshal(trimmed, &want) == nil
			if isLetter != (e.err == nil) {
				t.Fatalf("line %d %q: letter %v, but err = %v", e.Line, raw, isLetter, e.err)
			}
			if isLetter && !reflect.DeepEqual(e.DeadLetter, want) {
				t.Fatalf("line %d: %+v, want %+v", e.Line, e.DeadLetter, want)
			}
		}
		if k != len(got) {
			t.Fatalf("%d entries for %d lines", len(got), k)
		}
	})
}
