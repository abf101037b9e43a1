package fluentbittest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/testenv/fluentbithost"
	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// The configurations examples/fluent-bit ships (classic with its plugins
// and parsers files, and YAML) run as written in Fluent Bit 5.1.1, with
// only their paths, port and brokers pointed at the test's: Spacelift and
// Alertmanager webhooks through the http input and the Kubernetes audit
// log through tail reach Kafka, and the Kubernetes events the file too,
// with the ids `auditpipe normalize` gives.
func TestExampleConfigsRun(t *testing.T) {
	root, err := fluentbithost.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	examples := filepath.Join(root, "examples", "fluent-bit")
	for _, main := range []string{"fluent-bit.conf", "fluent-bit.yaml"} {
		t.Run(main, func(t *testing.T) {
			t.Parallel()
			e := need(t)
			broker, err := kafkatest.Start(kafkatest.Config{Topics: []string{"audit-events"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(broker.Close)
			port := fbt.FreePort(t)
			auditLog := e.path("audit.log")
			if err := os.WriteFile(auditLog, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			edit := strings.NewReplacer(
				"/fluent-bit/plugins/out_auditpipe.so", pluginSO,
				"/var/lib/fluent-bit", e.path("var-lib"),
				"/var/log/kubernetes/audit/audit.log", auditLog,
				"/var/log/auditpipe", e.path("out"),
				"kafka-0.kafka:9092,kafka-1.kafka:9092", strings.Join(broker.Addrs(), ","),
				"0.0.0.0", "127.0.0.1",
				"8888", strconv.Itoa(port),
			)
			for _, f := range []string{main, "plugins.conf", "parsers.conf"} {
				b, err := os.ReadFile(filepath.Join(examples, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.path(f), []byte(edit.Replace(string(b))), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range []string{"var-lib", "out"} {
				if err := os.MkdirAll(e.path(d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			fb := fbt.StartFile(t, fbt.Options{Binary: fluentBit, Dir: e.dir}, e.path(main))
			fb.WaitCount(startup, `msg="instance started"`, 2)
			fb.WaitCount(startup, "[input:http:http.0] listening on", 1)

			var want, wantK8s []string
			for _, s := range seeds {
				switch s.name {
				case "spacelift_stack_create", "alertmanager_audit":
					b, err := os.ReadFile(s.file)
					if err != nil {
						t.Fatal(err)
					}
					// The path is the tag: as Spacelift and Alertmanager
					// would be pointed at it.
					path := "/spacelift"
					if strings.HasPrefix(s.name, "alertmanager") {
						path = "/alertmanager"
					}
					post(t, "http://127.0.0.1:"+strconv.Itoa(port)+path, string(b), http.StatusCreated)
					want = append(want, s.ids...)
				case "k8s_audit_log":
					f, err := os.OpenFile(auditLog, os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					_, err = f.WriteString(strings.Join(s.records, "\n") + "\n")
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, s.ids...)
					wantK8s = append(wantK8s, s.ids...)
				}
			}
			want, wantK8s = sorted(want), sorted(wantK8s)
			kubeFile := filepath.Join(e.path("out"), "kube-audit.ndjson")
			eventually(t, delivery, "every event in Kafka and the Kubernetes ones in the file", func() bool {
				return broker.Count("audit-events") >= int64(len(want)) && len(fileEvents(t, kubeFile)) >= len(wantK8s)
			})
			fb.Signal(syscall.SIGTERM)
			if st := fb.Wait(startup); st.ExitCode() != 0 {
				t.Errorf("exit after SIGTERM: %v, want status 0", st)
			}

			recs, err := broker.Records(context.Background(), "audit-events")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				var ev event
				if err := json.Unmarshal(r.Value, &ev); err != nil {
					t.Fatalf("kafka record: %v", err)
				}
				if string(r.Key) != ev.ID {
					t.Errorf("kafka record key %q, want the event id %q", r.Key, ev.ID)
				}
				got = append(got, ev.ID)
			}
			if got = sorted(got); !slices.Equal(got, want) {
				t.Errorf("kafka:\n got %v\nwant %v", got, want)
			}
			got = nil
			for _, ev := range fileEvents(t, kubeFile) {
				got = append(got, ev.ID)
			}
			if got = sorted(got); !slices.Equal(got, wantK8s) {
				t.Errorf("%s:\n got %v\nwant %v", kubeFile, got, wantK8s)
			}
		})
	}
}
