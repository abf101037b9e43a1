// Package transformertest holds the shared test harness of the format
// packages: golden files, the id-stability property and fuzz checks. Every
// format runs the same checks, so a new format gets them by calling three
// functions.
package transformertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// update rewrites golden files: go test ./transformers/... -update. Read the
// diff before committing it.
var update = flag.Bool("update", false, "rewrite golden files with the current output")

// ReceivedAt is the fixed observed_time of every golden case.
var ReceivedAt = time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)

// Meta is the optional <case>.meta.json beside an input.
type Meta struct {
	SourceName string            `json:"source_name"`
	Headers    map[string]string `json:"headers"`
}

// Output is what a golden file holds.
type Output struct {
	Format    string            `json:"format,omitempty"`
	DecidedBy string            `json:"decided_by,omitempty"`
	Error     *ErrorView        `json:"error,omitempty"`
	Events    []auditpipe.Event `json:"events"`
	Errors    []ErrorView       `json:"errors,omitempty"`
	Skipped   map[string]int    `json:"skipped,omitempty"`
}

// ErrorView is an error as a golden file shows it.
type ErrorView struct {
	Message string `json:"message"`
	Item    int    `json:"item"`
	Path    string `json:"path"`
}

func view(err error) *ErrorView {
	var te *transformers.Error
	if errors.As(err, &te) {
		return &ErrorView{Message: te.Error(), Item: te.Item, Path: te.Path}
	}
	return &ErrorView{Message: err.Error(), Item: -1}
}

// Cases lists the inputs under dir: files ending in .json or .ndjson that
// are not golden or meta files.
func Cases(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"*.json", "*.ndjson"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if strings.HasSuffix(f, ".golden.json") || strings.HasSuffix(f, ".meta.json") {
				continue
			}
			out = append(out, f)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("no golden inputs in %s", dir)
	}
	return out
}

// Input reads a case file and its meta into a transformer input.
func Input(t testing.TB, file string) transformers.Input {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	in := transformers.Input{Body: body, Meta: transformers.Meta{SourceName: "test", ReceivedAt: ReceivedAt}}
	metaFile := strings.TrimSuffix(strings.TrimSuffix(file, ".json"), ".ndjson") + ".meta.json"
	if b, err := os.ReadFile(metaFile); err == nil {
		var m Meta
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", metaFile, err)
		}
		if m.SourceName != "" {
			in.Meta.SourceName = m.SourceName
		}
		in.Meta.Headers = http.Header{}
		for k, v := range m.Headers {
			in.Meta.Headers.Set(k, v)
		}
	}
	return in
}

// Run transforms in and renders the outcome the way golden files hold it.
func Run(t testing.TB, tr transformers.Transformer, in transformers.Input) Output {
	t.Helper()
	res, err := transformers.Run(context.Background(), tr, in)
	out := Output{Format: res.Format, DecidedBy: res.DecidedBy, Events: res.Events, Skipped: res.Skipped}
	if out.Events == nil {
		out.Events = []auditpipe.Event{}
	}
	if err != nil {
		out.Error = view(err)
	}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, *view(e))
	}
	for i := range res.Events {
		if verr := res.Events[i].Validate(); verr != nil {
			t.Errorf("event %d does not validate: %v", i, verr)
		}
	}
	if in.Doc == nil { // a document is consumed by its transform
		appends(t, tr, in, res, err)
	}
	return out
}

// appends checks that Transform adds to what a Result holds, as front
// doors that reuse one Result's events rely on.
func appends(t testing.TB, tr transformers.Transformer, in transformers.Input, want transformers.Result, wantErr error) {
	t.Helper()
	held := auditpipe.Event{ID: "held by the caller"}
	res := transformers.Result{Events: []auditpipe.Event{held}}
	err := tr.Transform(context.Background(), in, &res)
	ok := (err == nil) == (wantErr == nil) && len(res.Events) == 1+len(want.Events) && reflect.DeepEqual(res.Events[0], held)
	for i := 0; ok && i < len(want.Events); i++ {
		ok = res.Events[1+i].ID == want.Events[i].ID // times may be now's
	}
	if !ok {
		t.Errorf("Transform into a Result holding one event: got %d events (first %q) and error %v, want the held event then the %d of a fresh Result and error %v",
			len(res.Events), res.Events[0].ID, err, len(want.Events), wantErr)
	}
}

// Golden runs every case under dir through tr and compares the result with
// <case>.golden.json, rewriting it under -update.
func Golden(t *testing.T, tr transformers.Transformer, dir string) {
	for _, file := range Cases(t, dir) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(Run(t, tr, Input(t, file)), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(strings.TrimSuffix(file, ".json"), ".ndjson") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it, then read it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update and review the diff):\n%s", golden, diffLines(string(want), string(got)))
			}
		})
	}
}

// IDsStable checks the id property on every single-document case under dir:
// re-encoding the payload canonically (sorted keys, no whitespace, numbers
// respelled) and handing it over already decoded, as the Fluent Bit plugin
// does, never changes any id.
func IDsStable(t *testing.T, tr transformers.Transformer, dir string) {
	for _, file := range Cases(t, dir) {
		in := Input(t, file)
		want := ids(Run(t, tr, in))
		if len(want) == 0 || strings.HasSuffix(file, ".ndjson") {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			canon, err := auditpipe.Canonicalize(in.Body)
			if err != nil {
				t.Fatal(err)
			}
			reencoded := in
			reencoded.Body = canon
			if got := ids(Run(t, tr, reencoded)); !equal(got, want) {
				t.Errorf("canonical re-encoding changed ids:\n got %v\nwant %v", got, want)
			}
			var decoded any
			dec := json.NewDecoder(bytes.NewReader(in.Body))
			dec.UseNumber()
			if err := dec.Decode(&decoded); err != nil {
				t.Fatal(err)
			}
			asValue := in
			asValue.Body, asValue.Value = nil, decoded
			if got := ids(Run(t, tr, asValue)); !equal(got, want) {
				t.Errorf("decoded-value input changed ids:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func ids(o Output) []string {
	var s []string
	for _, e := range o.Events {
		s = append(s, e.ID)
	}
	return s
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Seed adds every case under dir to a fuzz corpus.
func Seed(f *testing.F, dir string) {
	for _, file := range Cases(f, dir) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// Check is the body of every format's fuzz target: any input may fail, but
// never panic, every event must validate and every error must be a located
// *transformers.Error, whose message stays short whatever the input.
func Check(t *testing.T, tr transformers.Transformer, body []byte) {
	res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: body, Meta: transformers.Meta{SourceName: "fuzz", ReceivedAt: ReceivedAt}})
	if err != nil {
		var te *transformers.Error
		if !errors.As(err, &te) || te.Path == "" || te.Format == "" {
			t.Fatalf("payload error is not a located *transformers.Error: %#v", err)
		}
		checkShort(t, te)
	}
	for _, e := range res.Errors {
		if e.Path == "" || e.Format == "" {
			t.Fatalf("item error without path or format: %#v", e)
		}
		checkShort(t, e)
	}
	for i := range res.Events {
		if verr := res.Events[i].Validate(); verr != nil {
			t.Fatalf("event %d invalid: %v", i, verr)
		}
		if _, err := json.Marshal(res.Events[i]); err != nil {
			t.Fatalf("event %d does not encode: %v", i, err)
		}
	}
}

// maxMessage bounds an error message: a path, a kind, what was expected and
// short excerpts, never a payload's worth.
const maxMessage = 1024

func checkShort(t *testing.T, e *transformers.Error) {
	t.Helper()
	if len(e.Path) > transformers.MaxPathLength || len(e.Error()) > maxMessage {
		t.Fatalf("error message of %d bytes (path %d): %.2000s", len(e.Error()), len(e.Path), e.Error())
	}
}

// diffLines is a minimal line diff for failure messages.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("-" + wl + "\n+" + gl + "\n")
			if b.Len() > 4000 {
				b.WriteString("...\n")
				break
			}
		}
	}
	return b.String()
}

// SlowPathSame checks that the already-canonical fast path (payloads whose
// bytes are their own canonical form) and the general path make the same
// events: every case under dir is run as is and with a leading space, which
// rules the fast path out, and the events must match but for raw_sha256.
func SlowPathSame(t *testing.T, tr transformers.Transformer, dir string) {
	for _, file := range Cases(t, dir) {
		in := Input(t, file)
		fast := Run(t, tr, in)
		if len(fast.Events) == 0 {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			slowIn := in
			slowIn.Body = append([]byte{' '}, in.Body...)
			slow := Run(t, tr, slowIn)
			if d := DiffButRawHash(fast.Events, slow.Events); d != "" {
				t.Errorf("fast and general paths differ: %s", d)
			}
		})
	}
}

// DiffButRawHash compares two event lists but for raw_sha256 (which differs
// when the payload bytes do) and describes the first difference, or "".
func DiffButRawHash(a, b []auditpipe.Event) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d events against %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		x.RawSHA256, y.RawSHA256 = "", ""
		jx, _ := json.Marshal(x)
		jy, _ := json.Marshal(y)
		if !bytes.Equal(jx, jy) {
			return fmt.Sprintf("event %d:\n%s\n%s", i, jx, jy)
		}
	}
	return ""
}
