// Package s3 is the output that archives events in Amazon S3 or an
// S3-compatible store (MinIO, versitygw, Ceph) as NDJSON objects, gzip
// compressed by default, laid out Hive-style so that Athena, Spark or a
// plain `aws s3 cp` can find a day's or an hour's events by key:
//
//	<prefix>/source=<type>/dt=YYYY-MM-DD/hour=HH/<first-id>-<n>.ndjson.gz
//
// The key is derived from the events themselves (the UTC date and hour of
// their time, their source type, the first event's id and the count), never
// from the clock or a random name, so a batch the Deliverer retries after a
// lost response overwrites the object it already wrote instead of adding a
// duplicate beside it; and the gzip stream carries no name or time, so the
// retried object is byte-identical too.
//
// Write uploads synchronously with one PutObject per object: an event is
// acknowledged only once S3 has stored it. Batching by size and age happens
// upstream, where the engine reads batches from its durable queue, so this
// output keeps no buffer of its own that a crash could lose.
package s3
