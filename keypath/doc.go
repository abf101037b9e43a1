// Package keypath is the error configuration checks return: a message
// located by the key it concerns, as data, so that a program reading the
// configuration from somewhere else can say where in its own terms. The
// Fluent Bit plugin, whose outputs are configured by keys such as
// Kafka_Brokers rather than by YAML, maps an error's Path (kafka.brokers)
// to the key the user wrote instead of rewriting messages.
//
// An output's Config.Validate names keys from its own section down
// (brokers[0], tls.min_version); whoever holds the section puts its name
// in front with Under, so that the error keeps one path (kafka.brokers[0])
// however deep it was found.
package keypath
