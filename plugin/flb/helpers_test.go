package flb

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/auditpipe/auditpipe"
)

// shape and ts select how a test record is encoded.
type shape int

const (
	classic shape = iota // [timestamp, map]
	v2                   // [[timestamp, metadata], map]
)

type tsEnc int

const (
	eventTime tsEnc = iota // ext 0
	intTime
	floatTime
)

var testTime = time.Date(2025, 6, 12, 9, 15, 2, 417000000, time.UTC)

func appendTime(b []byte, enc tsEnc, t time.Time) []byte {
	switch enc {
	case intTime:
		return msgp.AppendInt64(b, t.Unix())
	case floatTime:
		return msgp.AppendFloat64(b, float64(t.UnixNano())/1e9)
	}
	data := make([]byte, 8)
	binary.BigEndian.PutUint32(data, uint32(t.Unix()))
	binary.BigEndian.PutUint32(data[4:], uint32(t.Nanosecond()))
	b, err := msgp.AppendExtension(b, &msgp.RawExtension{Type: 0, Data: data})
	if err != nil {
		panic(err)
	}
	return b
}

// appendRecord appends one record whose body is any msgp.AppendIntf value.
func appendRecord(t testing.TB, b []byte, sh shape, enc tsEnc, meta map[string]any, body any) []byte {
	t.Helper()
	b = msgp.AppendArrayHeader(b, 2)
	if sh == v2 {
		b = msgp.AppendArrayHeader(b, 2)
		b = appendTime(b, enc, testTime)
		var err error
		if b, err = msgp.AppendIntf(b, meta); err != nil {
			t.Fatal(err)
		}
	} else {
		b = appendTime(b, enc, testTime)
	}
	b, err := msgp.AppendIntf(b, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// payload reads a seed payload from examples/payloads as a decoded value.
func payload(t testing.TB, name string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(payloadBytes(t, name), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func payloadBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys serves a Fluent Bit [OUTPUT] section, case-insensitively.
func keys(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[strings.ToLower(kv[i])] = kv[i+1]
	}
	return func(k string) string { return m[strings.ToLower(k)] }
}

// readEvents reads the NDJSON events the file output wrote.
func readEvents(t testing.TB, path string) []auditpipe.Event {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditpipe.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var ev auditpipe.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// readLetters reads every dead letter in dir.
func readLetters(t testing.TB, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	var out []map[string]any
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
