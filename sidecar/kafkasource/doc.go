// Package kafkasource is the sidecar's Kafka source: a member of a Kafka
// consumer group that reads raw audit payloads (one per message) from the
// partitions the group gives it, runs them through the source's ingest
// stage, and puts their events into the sidecar's durable queue. Running
// several sidecars with the same group_id spreads the partitions over
// them; Kafka's group coordinator, not anything of ours, decides who
// reads what and moves the partitions of an instance that stops or dies.
//
// A message is presented to the transformer as an HTTP request would be:
// its value is the body, its headers are the request headers (ce_* as
// ce-*, so binary-mode CloudEvents work as over HTTP), and its timestamp
// is the observed time, so a message read twice makes identical events.
//
// # At least once
//
// Each owned partition has a worker that persists its messages in offset
// order, a batch at a time: the events of the batch go into the queue in
// one append (fsync'd when it returns), then the messages that could not
// be transformed go, whole and with their headers and topic, partition and
// offset, into the dead-letter store; only then is the batch's last
// offset marked, and marked offsets are committed every commit_interval,
// when partitions are revoked and at shutdown. A malformed message is
// therefore committed once it is dead-lettered (it would never succeed),
// and its partition goes on. What cannot succeed yet — a transformer that
// is unavailable (an external plugin down), a full queue or disk, a full
// dead-letter store — stops that partition, unacknowledged, and it is
// tried again with exponential backoff (100ms to 10s) for as long as it
// takes; fetching pauses for a partition whose worker has
// max_buffered_messages waiting, so memory stays bounded.
//
// On a rebalance the revoked partitions' workers finish the append under
// way, what is durable is committed, and the messages fetched but not
// persisted are dropped: the next owner reads them from the committed
// offset. Partitions lost to an expired session commit nothing. A crash
// loses at most the commit_interval of commits, never an event: those
// messages are read again and make the same events with the same ids,
// which the outputs' destinations deduplicate. Shutdown stops fetching,
// finishes the appends under way, commits and leaves the group, so the
// others take over at once instead of after session_timeout.
//
// # The client
//
// The Kafka output uses segmentio/kafka-go; this source uses franz-go's
// kgo, which the module already required. kafka-go's group Reader does
// work against kfake (it joins, is assigned partitions and commits
// synchronously with CommitInterval 0, so commit-after-fsync is
// possible), but it delivers every partition through one stream with no
// per-partition pause and no revoke hook: a partition waiting for its
// transformer would stop all of them, and an offset committed after a
// rebalance could be one of a partition that moved (kafka-go commits it
// under the new generation), rewinding its new owner. kgo has explicit
// marks and commits, assigned/revoked/lost callbacks that rebalances wait
// for (BlockRebalanceOnPoll), per-partition pause and resume, the high
// watermark with every fetch (the lag), and it is the client kfake's group
// coordinator is written and tested against. The SASL settings are the
// output's (internal/kafkasasl), the TLS ones every output's.
package kafkasource
