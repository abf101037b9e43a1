//go:build !auditpipe_safejson

package jsontree

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/valyala/fastjson"
)

// TestTreeMirrorsFastjson holds the mirror types to fastjson's own: their
// layout field by field, and what the trees written through them mean.
// Both must hold for the fastjson version go.mod pins; should an upgrade
// break either, build with -tags auditpipe_safejson until mirror.go is
// brought up to date.
func TestTreeMirrorsFastjson(t *testing.T) {
	t.Run("layout", testMirrorLayout)
	t.Run("meaning", testMirrorMeaning)
}

func testMirrorLayout(t *testing.T) {
	kvType := reflect.TypeFor[fastjson.Object]().Field(0).Type.Elem()
	pairs := []struct{ ours, theirs reflect.Type }{
		{reflect.TypeFor[treeValue](), reflect.TypeFor[fastjson.Value]()},
		{reflect.TypeFor[treeObject](), reflect.TypeFor[fastjson.Object]()},
		{reflect.TypeFor[treeKV](), kvType},
	}
	for _, p := range pairs {
		if p.ours.Size() != p.theirs.Size() || p.ours.NumField() != p.theirs.NumField() {
			t.Fatalf("%v (%d bytes, %d fields) does not mirror %v (%d bytes, %d fields)",
				p.ours, p.ours.Size(), p.ours.NumField(), p.theirs, p.theirs.Size(), p.theirs.NumField())
		}
		for i := range p.ours.NumField() {
			o, th := p.ours.Field(i), p.theirs.Field(i)
			if o.Name != th.Name || o.Offset != th.Offset || o.Type.Kind() != th.Type.Kind() || o.Type.Size() != th.Type.Size() {
				t.Errorf("%v.%s (offset %d, %v) does not mirror %v.%s (offset %d, %v)",
					p.ours, o.Name, o.Offset, o.Type, p.theirs, th.Name, th.Offset, th.Type)
			}
		}
	}
}

// testMirrorMeaning builds the tree of every payload the repository
// tests with (golden inputs, benchmark payloads, fuzz corpora) both ways,
// through the mirror (Build, and the writer msgpack records and Go values
// use) and with fastjson's own parser, and compares every value as
// fastjson's public API reads it: a layout that matched by offset but
// not by meaning would fail here.
func testMirrorMeaning(t *testing.T) {
	inputs := testInputs(t)
	if len(inputs) < 50 {
		t.Fatalf("found %d inputs in the repository's testdata, expected more", len(inputs))
	}
	compared := 0
	for name, in := range inputs {
		for _, doc := range documents(in) {
			built, parsed, ok := buildBoth(t, doc)
			if !ok {
				continue
			}
			if !sameTree(built, parsed) {
				t.Fatalf("%s: the tree Build wrote reads otherwise than fastjson's: %.200q", name, doc)
			}
			written := GetTree()
			if w := written.Finish(copyTree(written, (*Value)(parsed))); !sameTree(w.fj(), parsed) {
				t.Fatalf("%s: the tree the writer wrote reads otherwise than fastjson's: %.200q", name, doc)
			}
			compared++
		}
	}
	if compared < 50 {
		t.Fatalf("compared %d trees, expected more", compared)
	}
}

// copyTree writes v again through the writer.
func copyTree(t *Tree, v *Value) *Value {
	switch v.Kind() {
	case Object:
		var ks []string
		var cs []*Value
		v.visitPublic(func(k []byte, c *Value) { ks, cs = append(ks, string(k)), append(cs, c) })
		o := t.Object(len(ks))
		for i := range ks {
			t.SetMember(o, i, ks[i], copyTree(t, cs[i]))
		}
		return o
	case Array:
		els := v.Elements()
		a := t.Array(len(els))
		for i, e := range els {
			t.SetElement(a, i, copyTree(t, e))
		}
		return a
	case String:
		return t.String(string(v.StringBytes()))
	case Number:
		return t.Number(string(v.AppendText(nil)))
	}
	return t.Literal(v.Kind())
}

// documents are the JSON documents of a test input: itself, or its lines.
func documents(in []byte) [][]byte {
	var r jsonscan.Result
	if jsonscan.Scan(in, testLimits, nil, &r, nil); r.OK && r.WellFormed {
		return [][]byte{in}
	}
	return bytes.Split(in, []byte{'\n'})
}

// testInputs are the files under the transformers' testdata directories,
// and the values of their fuzz corpora.
func testInputs(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "/testdata/") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
			out[path] = b
			return nil
		}
		for i, line := range strings.Split(string(b), "\n")[1:] {
			if s, ok := strings.CutPrefix(line, "[]byte("); ok {
				if v, err := strconv.Unquote(strings.TrimSuffix(s, ")")); err == nil {
					out[path+"#"+strconv.Itoa(i)] = []byte(v)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
