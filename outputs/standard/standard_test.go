package standard_test

import (
	"reflect"
	"testing"

	"github.com/auditpipe/auditpipe/outputs/standard"
)

func TestRegistry(t *testing.T) {
	r := standard.Registry()
	want := []string{"kafka", "elasticsearch", "opensearch", "s3", "webhook", "splunk_hec", "file", "stdout"}
	if got := r.Types(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for _, typ := range want {
		f, _ := r.Factory(typ)
		def := f.DefaultConfig()
		if (def == nil) != (typ == "stdout") {
			t.Errorf("%s: DefaultConfig() = %T", typ, def)
		}
		if def != nil && reflect.TypeOf(def).Kind() != reflect.Pointer {
			t.Errorf("%s: DefaultConfig() is a %T, want a pointer the configuration decodes into", typ, def)
		}
	}
	if b, _ := r.Factory("s3"); b.DefaultBatch().MaxEvents != 10000 {
		t.Errorf("s3 batch = %+v", b.DefaultBatch())
	}
	if b, _ := r.Factory("kafka"); b.DefaultBatch().MaxEvents != 500 {
		t.Errorf("kafka batch = %+v", b.DefaultBatch())
	}
}
