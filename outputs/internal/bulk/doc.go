// Package bulk is the engine of the outputs that speak the Elasticsearch
// bulk API (elasticsearch, opensearch): the bulk body of create actions
// keyed by event id, the per-item handling of the response (409 already
// there, 429 and 5xx retried, other 4xx dead-lettered), splitting by size,
// and the index template installed before the first documents. Each
// output brings its client (a Client) and its document encoder.
package bulk
