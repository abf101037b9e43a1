package standard

import (
	"fmt"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/elasticsearch"
	"github.com/auditpipe/auditpipe/outputs/file"
	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/outputs/opensearch"
	"github.com/auditpipe/auditpipe/outputs/s3"
	"github.com/auditpipe/auditpipe/outputs/splunkhec"
	"github.com/auditpipe/auditpipe/outputs/webhook"
)

// Factories returns the shipped output types' factories, in documentation
// order.
func Factories() []outputs.Factory {
	return []outputs.Factory{
		kafka.NewFactory(),
		elasticsearch.NewFactory(),
		opensearch.NewFactory(),
		s3.NewFactory(),
		webhook.NewFactory(),
		splunkhec.NewFactory(),
		file.NewFactory(),
		file.NewStdoutFactory(),
	}
}

// Registry returns a new Registry of Factories. Its only possible error is
// two factories of one type, a mistake in this file that its test catches,
// so it panics on one.
func Registry() *outputs.Registry {
	r, err := outputs.NewRegistry(Factories()...)
	if err != nil {
		panic(fmt.Sprintf("standard: %v", err))
	}
	return r
}
