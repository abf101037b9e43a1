// Package kafka is the Kafka output: it produces each event as one record,
// keyed by the event id, with the event's JSON form as the value and its
// CloudEvents attributes as ce_* headers (the CloudEvents Kafka protocol
// binding, binary mode), to a topic chosen per event by a template.
//
// It uses segmentio/kafka-go's Writer, configured against that library's
// defaults where they do not suit an audit trail: acks from all in-sync
// replicas (the zero value is none), synchronous writes with a short batch
// timeout (the default adds a second to every write), and one attempt per
// Write (the outputs.Deliverer retries, so that every failure is classified
// once and re-sends only the events that failed). kafka-go reports an error
// per message; Write maps each back to its event and classifies it:
// rejections of the records themselves (too large, invalid) are permanent
// and go to the dead-letter store, everything else (brokers down, leader
// elections, not enough replicas, timeouts, SASL and ACL failures) is
// retryable and the events are kept.
//
// Delivery is at least once: an attempt that times out may still have been
// written, and the retry writes it again under the same key, which is the
// event id, so consumers and compacted topics can drop the duplicate.
package kafka
