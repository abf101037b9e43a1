package splunkhec_test

import (
	"os"
	"testing"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/outputs/splunkhec"
)

// TestRealSplunk delivers with acknowledgement to a real HEC when
// AUDITPIPE_SPLUNK_HEC_URL and AUDITPIPE_SPLUNK_HEC_TOKEN are set (the
// token with indexer acknowledgement on). AUDITPIPE_SPLUNK_HEC_INDEX picks
// the index (default: the token's); AUDITPIPE_SPLUNK_HEC_CA_FILE trusts a
// CA, and AUDITPIPE_SPLUNK_HEC_INSECURE=1 skips verification (Splunk's
// default self-signed certificate on 8088).
func TestRealSplunk(t *testing.T) {
	url, token := os.Getenv("AUDITPIPE_SPLUNK_HEC_URL"), os.Getenv("AUDITPIPE_SPLUNK_HEC_TOKEN")
	if url == "" || token == "" {
		t.Skip("set AUDITPIPE_SPLUNK_HEC_URL and AUDITPIPE_SPLUNK_HEC_TOKEN to run against a real Splunk HEC")
	}
	cfg := splunkhec.Config{
		URL: url, Token: token, Index: os.Getenv("AUDITPIPE_SPLUNK_HEC_INDEX"), Gzip: true,
		TLS: outputs.TLSConfig{CAFile: os.Getenv("AUDITPIPE_SPLUNK_HEC_CA_FILE"),
			InsecureSkipVerify: os.Getenv("AUDITPIPE_SPLUNK_HEC_INSECURE") == "1"},
	}
	o, err := splunkhec.New(testCtx(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(testCtx(t))
	if err := o.Write(testCtx(t), outputstest.Events(20)); err != nil {
		t.Fatal(err)
	}
}
