// Package hectest is an in-process emulation of Splunk's HTTP Event
// Collector (HEC) for tests and for the demo stack, written from Splunk's
// HEC reference: it serves /services/collector/event (and its aliases
// /services/collector and /services/collector/event/1.0), the raw endpoint
// /services/collector/raw, /services/collector/ack and
// /services/collector/health over a real loopback HTTP server.
//
// What a HEC client must get right is checked as Splunk checks it:
// "Authorization: Splunk <token>" (codes 2, 3, 4 and 1 for a disabled
// token), a data channel (X-Splunk-Request-Channel or ?channel=, a GUID)
// on every request while indexer acknowledgement is on (codes 10, 11), the
// event envelope (event required and not blank: 12, 13; time a number; an
// index the token may write to: 7; indexed fields of strings: 15; a body
// that is JSON objects one after the other: 6), and gzip bodies. As Splunk
// does, the events before an invalid one in a request are indexed and the
// answer names the invalid one in "invalid-event-number".
//
// Acknowledgement follows Splunk: every accepted request on a channel gets
// the channel's next ackId, and POST /services/collector/ack answers
// {"acks":{"<id>":true|false}}; an id reported true is forgotten, as
// Splunk forgets it. Faults set at run time drive a client's retry paths:
// busy answers (503, code 9, with Retry-After), arbitrary error answers,
// acks that come only after some polls (delayed) or never (lost, while the
// events are indexed all the same, as happens when Splunk indexes but the
// ack is lost), and a disabled token. Events, indexed per index, and the
// duplicates (an event whose id an index already holds) are there to
// inspect.
package hectest
