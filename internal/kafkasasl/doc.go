// Package kafkasasl is SASL authentication to Kafka brokers as the
// configuration spells it (`sasl: {mechanism, username, password}`), shared
// by the Kafka output and the sidecar's Kafka source so that both accept
// the same keys, check them the same way and name the same mechanisms.
//
// The mechanisms are franz-go's (PLAIN and SCRAM need only the standard
// library there). The output, which is built on segmentio/kafka-go, adapts
// them to that library's interface; the source uses franz-go directly.
package kafkasasl
