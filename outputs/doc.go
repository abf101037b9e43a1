// Package outputs is the delivery half of auditpipe: the contract every
// destination implements (Output), the words it uses to say how an event
// failed (Permanent, RetryAfter, PartialError), the wrapper that retries
// what can be retried and dead-letters what cannot (Deliverer), the
// per-output routing rules (Match), and how an output type is offered to
// the programs that build outputs from configuration (Factory, Registry).
//
// An Output does one attempt and reports; it never sleeps or loops. The
// Deliverer owns retry policy so that every destination retries, backs off
// and dead-letters the same way, and so that the two front doors (the
// sidecar's queue and the Fluent Bit plugin) only choose how long to keep
// trying: unlimited in the sidecar, bounded in the plugin, whose host
// re-sends the chunk later.
//
// The destinations live in sub-packages (outputs/kafka, outputs/elasticsearch,
// outputs/s3, outputs/webhook, outputs/file), each with a NewFactory, and
// outputs/standard lists the shipped ones. The dead-letter store is in
// outputs/dlq, and the configuration that builds outputs by type name from
// a Registry in outputs/fanout.
package outputs
