package fluentbittest_test

import (
	"slices"
	"testing"

	"github.com/auditpipe/auditpipe/testenv/elastictest"
	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
	"github.com/auditpipe/auditpipe/testenv/hectest"
)

// The SIEM outputs work in a real Fluent Bit with the keys derived from
// their configurations: every seed through the http input reaches Splunk
// HEC (acknowledged) and OpenSearch (signed with AWS SigV4), with the ids
// `auditpipe normalize` gives.
func TestSIEMOutputs(t *testing.T) {
	want := allIDs()
	t.Run("splunk_hec", func(t *testing.T) {
		t.Parallel()
		e := need(t)
		hec := hectest.New(t, hectest.Config{})
		port := fbt.FreePort(t)
		fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.Flag, Service: retryService(),
			Inputs: []fbt.Section{httpInput(port)},
			Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Output", "splunk_hec", "DLQ_Dir", e.path("dlq"),
				"Splunk_Hec_URL", hec.URL(), "Splunk_Hec_Token", hec.Token(), "Splunk_Hec_Ack_Poll_Interval", "20ms")}})
		fb.WaitCount(startup, `msg="instance started"`, 1)
		postSeeds(t, port, "hec.")
		eventually(t, delivery, "every event indexed in Splunk", func() bool { return len(hec.IDs("main")) >= len(want) })
		if got := sorted(hec.IDs("main")); !slices.Equal(got, want) {
			t.Errorf("ids in the index:\n got %v\nwant %v", got, want)
		}
		if st := hec.Stats(); st.AckPolls == 0 {
			t.Error("no acknowledgement was asked for")
		}
	})
	t.Run("opensearch", func(t *testing.T) {
		t.Parallel()
		e := need(t)
		sig := elastictest.SigV4{Region: "eu-west-1", Service: "es", AccessKeyID: "AKIDFLUENTBITTEST", SecretAccessKey: "fluent-bit-test-secret"}
		srv := elastictest.NewServerConfig(t, elastictest.Config{Flavor: elastictest.FlavorOpenSearch, SigV4: &sig})
		port := fbt.FreePort(t)
		fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.Flag, Service: retryService(),
			Inputs: []fbt.Section{httpInput(port)},
			Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Output", "opensearch", "DLQ_Dir", e.path("dlq"),
				"Opensearch_URLs", "http://"+srv.Addr(), "Opensearch_Index", "audit",
				"Opensearch_Aws_Sigv4_Region", sig.Region, "Opensearch_Aws_Sigv4_Access_Key_ID", sig.AccessKeyID,
				"Opensearch_Aws_Sigv4_Secret_Access_Key", sig.SecretAccessKey)}})
		fb.WaitCount(startup, `msg="instance started"`, 1)
		postSeeds(t, port, "os.")
		eventually(t, delivery, "every event in OpenSearch", func() bool { return srv.Count("audit") >= len(want) })
		var got []string
		for _, h := range srv.Docs("audit") {
			got = append(got, h.ID)
		}
		if got = sorted(got); !slices.Equal(got, want) {
			t.Errorf("document ids:\n got %v\nwant %v", got, want)
		}
	})
}
