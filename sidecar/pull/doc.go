// Package pull is the sidecar's pull source: for applications that do not
// push their audit log anywhere but only expose it at an HTTP endpoint
// (yoq's GET /v1/audit?limit=N: bearer token, newest entry first, entries
// without ids), a Poller fetches the newest page on an interval, turns the
// entries it has not seen before into events and hands them to the
// sidecar's durable queue.
//
// The endpoint has no cursor, no ids and a one-second clock, so what is
// new must be worked out from the pages themselves. The Poller keeps a
// watermark, a small file per source: the last page as content hashes
// (the transformer's base ids), how many copies of each content were ever
// queued, and the newest event time seen. The log is append-only and
// served in the order written, so a page is the entries written since the
// last poll followed by the start of the last page: the new entries are
// those above the nearest point where the last page reappears. This is
// exact for identical entries in the same second (two secret_set calls)
// and for entries whose time is earlier than one already seen (concurrent
// writers), both of which a "newer than the newest time seen" rule gets
// wrong. If the last page does not reappear (a server that orders by time
// and shuffles ties), copies are counted instead. README.md states the
// rule's limits, and when a poll counts as a gap (entries may have been
// missed).
//
// Delivery is at least once: the watermark advances, and is persisted
// atomically, only after the queue said the events are durable, so a crash
// in between queues the same entries again with the same ids. Identical
// copies are numbered in the order they were written (the n-th copy ever
// queued gets auditpipe.NthDuplicateID(base, n)), so their ids do not
// depend on where a page happened to start, and the destinations
// deduplicate the re-sent ones.
package pull
