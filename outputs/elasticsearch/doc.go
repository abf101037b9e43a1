// Package elasticsearch is the output that indexes audit events into
// Elasticsearch (8.x, or a compatible cluster) as Elastic Common Schema
// documents, so that Kibana, the SIEM rules and anything else built on ECS
// read them without a custom mapping.
//
// Each batch goes out as bulk requests of create actions whose _id is the
// event id. That makes delivery idempotent, which the at-least-once
// Deliverer needs: an event sent again after a timeout is answered 409
// (it exists) and counted as delivered, never stored twice. Items are
// judged one by one from the bulk response, because Elasticsearch accepts
// some documents of a request and rejects others: 429 and 5xx items are
// retried, other 4xx items (a mapping conflict, a document the cluster
// cannot parse) are permanent and go to the dead-letter store with
// Elasticsearch's reason. esutil.BulkIndexer is not used because it drops
// item-level 429s instead of reporting them for retry.
//
// The body is built by appending bytes (AppendECS) rather than through
// encoding/json, which would cost more than the rest of the pipeline. An
// optional index template (bootstrap_template) gives the documents their
// ECS types; the target is a dated index template or a data stream.
package elasticsearch
