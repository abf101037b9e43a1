// Package kafkatest runs a real Kafka broker in the test process, so that the
// Kafka output's tests and the demo stack talk the Kafka wire protocol to a
// peer over loopback instead of to a mock of the client library.
//
// The broker is franz-go's kfake: a single-node cluster that speaks the
// protocol (API version negotiation, Metadata, Produce with every
// compression codec and record headers, Fetch, ListOffsets, CreateTopics,
// SASL PLAIN and SCRAM-SHA-256/512, TLS) and keeps records in memory. Any
// client can use it: kafka-go, franz-go and librdkafka-based tools such as
// kcat. Records consumes a topic back with franz-go's kgo client, and
// FailProduce, HoldProduce and DelayProduce inject the broker-side failures
// an output must handle (error codes per partition, requests that hang or
// answer late).
//
// What it does not emulate: replication (there is one broker, so acks=all is
// acks=1 and NOT_ENOUGH_REPLICAS only happens when injected), disk
// persistence, broker restarts with the same data, quotas and throttling,
// ACLs (SASL authenticates but every authenticated user may do anything),
// and the exact limits and timing of a real cluster. Tests that depend on
// those need a real Kafka.
package kafkatest
