package fluentbittest_test

import (
	"bytes"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/outputs/dlq"
	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
)

// variants are the ways a user loads the plugin: -e or a plugins file
// with a classic configuration, the plugins list or -e with a YAML one.
var variants = []struct {
	format fbt.Format
	load   fbt.Load
}{
	{fbt.Classic, fbt.Flag},
	{fbt.Classic, fbt.PluginsFile},
	{fbt.YAML, fbt.PluginsSection},
	{fbt.YAML, fbt.Flag},
}

// Every seed format, through each input a user feeds the plugin with
// (dummy, http, tail with the json parser, and tail without a parser read
// with Payload_Key log), gives exactly the ids `auditpipe normalize` gives
// the same payload, with the plugin loaded in each way and each format.
// The records are read by Fluent Bit's own JSON parsers and handed over as
// its msgpack chunks, so this holds the plugin to Fluent Bit's encoding of
// every seed, not only to the C host's.
func TestEverySeedFormatThroughEachInput(t *testing.T) {
	for _, v := range variants {
		t.Run(v.format.String()+"_"+v.load.String(), func(t *testing.T) {
			t.Parallel()
			e := need(t)
			httpPort := fbt.FreePort(t)
			cfg := fbt.Config{
				Format:  v.format,
				Load:    v.load,
				Service: fbt.S("flush", "0.2", "grace", "2", "log_level", "info"),
				Parsers: []fbt.Section{fbt.S("Name", "json", "Format", "json")},
				Inputs:  []fbt.Section{fbt.S("Name", "http", "Listen", "127.0.0.1", "Port", strconv.Itoa(httpPort))},
			}
			for _, s := range seeds {
				for _, rec := range s.records {
					cfg.Inputs = append(cfg.Inputs, fbt.S("Name", "dummy", "Tag", "in.dummy."+s.name, "Dummy", rec, "Samples", "1", "Flush_On_Startup", "true"))
				}
				file := e.path("tail-" + s.name + ".ndjson")
				if err := os.WriteFile(file, []byte(strings.Join(s.records, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				cfg.Inputs = append(cfg.Inputs,
					fbt.S("Name", "tail", "Path", file, "Tag", "in.tail."+s.name, "Parser", "json", "Read_From_Head", "true"),
					fbt.S("Name", "tail", "Path", file, "Tag", "raw."+s.name, "Read_From_Head", "true"))
			}
			cfg.Outputs = []fbt.Section{
				fbt.S("Name", "auditpipe", "Match", "in.*", "Output", "file", "File_Path", e.path("events.ndjson"), "DLQ_Dir", e.path("dlq")),
				fbt.S("Name", "auditpipe", "Match", "raw.*", "Payload_Key", "log", "Output", "file", "File_Path", e.path("raw.ndjson"), "DLQ_Dir", e.path("dlq-raw")),
			}
			fb := e.start(cfg)
			fb.WaitCount(startup, `msg="instance started"`, 2)
			fb.WaitCount(startup, "[input:http:http.0] listening on", 1)
			for _, s := range seeds {
				body := "[" + strings.Join(s.records, ",") + "]"
				if len(s.records) == 1 {
					b, err := os.ReadFile(s.file) // as the sender wrote it
					if err != nil {
						t.Fatal(err)
					}
					body = string(b)
				}
				post(t, "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/in.http."+s.name, body, http.StatusCreated)
			}

			all := allIDs()
			eventually(t, delivery, "every seed's events from dummy, http and tail", func() bool {
				return len(fileEvents(t, e.path("events.ndjson"))) >= 3*len(all) && len(fileEvents(t, e.path("raw.ndjson"))) >= len(all)
			})
			byTag := map[string][]string{}
			for _, ev := range append(fileEvents(t, e.path("events.ndjson")), fileEvents(t, e.path("raw.ndjson"))...) {
				tag := ev.Labels["fluentbit_tag"]
				if ev.Source.Name != tag {
					t.Errorf("event %s: source.name %q, want the tag %q", ev.ID, ev.Source.Name, tag)
				}
				byTag[tag] = append(byTag[tag], ev.ID)
			}
			for _, s := range seeds {
				for _, tag := range []string{"in.dummy." + s.name, "in.http." + s.name, "in.tail." + s.name, "raw." + s.name} {
					if got := sorted(byTag[tag]); !slices.Equal(got, s.ids) {
						t.Errorf("%s (%s): ids\n got %v\nwant %v (auditpipe normalize); tags seen: %v", tag, s.file, got, s.ids, slices.Sorted(maps.Keys(byTag)))
					}
				}
			}

			fb.Signal(syscall.SIGTERM)
			if st := fb.Wait(startup); st.ExitCode() != 0 {
				t.Errorf("exit after SIGTERM: %v, want status 0", st)
			}
			if n := fb.Count(`msg="instance closed"`); n != 2 {
				t.Errorf("%d instances closed at exit, want 2", n)
			}
			for _, d := range []string{"dlq", "dlq-raw"} {
				if n := dlqCount(t, e.path(d)); n != 0 {
					t.Errorf("%s: %d dead letters, want none", d, n)
				}
			}
		})
	}
}

// post sends body to an http input and checks the answer (Fluent Bit's
// http input answers 201 by default).
func post(t *testing.T, url, body string, want int) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d, want %d", url, resp.StatusCode, want)
	}
}

func dlqCount(t *testing.T, dir string) int {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return 0
	}
	n := 0
	if err := dlq.Walk(dir, func(dlq.Entry) error { n++; return nil }); err != nil {
		t.Fatalf("dlq walk %s: %v", dir, err)
	}
	return n
}
