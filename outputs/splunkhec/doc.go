// Package splunkhec is the output that sends audit events to Splunk's
// HTTP Event Collector (HEC), type splunk_hec.
//
// Each Write is one POST to /services/collector/event holding one event
// envelope per event: time in epoch seconds with milliseconds, host,
// source, sourcetype and index from templates, the chosen labels as
// indexed fields, and the event's JSON form as the event. With indexer
// acknowledgement (on by default) the output sends on its own data channel
// and a batch counts as delivered only once /services/collector/ack
// reports its ackId true; one that does not within ack_timeout is sent
// again, which indexes its events again in Splunk (searches dedup on the
// event id). HEC's codes are mapped onto the outputs.Output contract:
// busy (9) and 5xx retried with back-off, token errors (1-4, 401/403)
// retried until fixed, invalid data or index (6, 7, 12, 13, 15)
// dead-lettered for the one event HEC names.
package splunkhec
