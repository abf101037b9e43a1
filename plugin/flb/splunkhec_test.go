package flb

import (
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs/splunkhec"
)

// The splunk_hec output's keys are derived like every output's.
func TestParseConfigSplunkHEC(t *testing.T) {
	c, err := ParseConfig(keys("Output", "splunk_hec", "Splunk_Hec_URL", "https://hec:8088", "Splunk_Hec_Token", "tok",
		"Splunk_Hec_Index", "audit_{source}", "Splunk_Hec_Fields", "cluster, env", "Splunk_Hec_Ack", "false",
		"Splunk_Hec_Ack_Timeout", "30s", "Splunk_Hec_Gzip", "true", "DLQ_Dir", "/tmp/d"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.Outputs[0].Settings.(*splunkhec.Config)
	if s == nil || s.URL != "https://hec:8088" || s.Token != "tok" || s.Index != "audit_{source}" ||
		len(s.Fields) != 2 || s.Fields[1] != "env" || s.AckOn() || s.AckTimeout != 30*time.Second || !s.Gzip {
		t.Fatalf("splunk_hec = %+v", s)
	}
	_, err = ParseConfig(keys("Output", "splunk_hec", "Splunk_Hec_URL", "https://hec:8088", "DLQ_Dir", "/tmp/d"))
	if err == nil || !strings.Contains(err.Error(), "Splunk_Hec_Token: required") {
		t.Fatalf("err = %v, want Splunk_Hec_Token: required", err)
	}
}
