// Package fanout builds auditpipe's outputs by name from configuration:
// the `outputs` list shared by the sidecar's YAML and the Fluent Bit
// plugin. Each entry names an output, its type, the events it takes
// (match), how it retries and how big its batches are; the type's own
// settings sit under a key named after the type:
//
//	outputs:
//	  - name: siem
//	    type: elasticsearch
//	    elasticsearch: {urls: ["https://es:9200"], api_key: "${ES_API_KEY}"}
//	  - name: security
//	    type: webhook
//	    match:
//	      - outcomes: [denied]
//	      - actions: ["audit_trail_webhook.*"]
//	    webhook: {url: "https://hooks.example.com/audit", secret: "${HOOK_SECRET}"}
//
// Nothing here knows a type: an outputs.Registry passed in (the program's,
// outputs/standard) gives each type's factory, which says what its section
// decodes into, how it validates, its default batch and how to build it.
// A type's section is kept as YAML until the registry is known
// (DecodeSettings decodes it as strictly as the rest of the file).
//
// A Set is the built outputs with their Deliverers; both front doors hand
// events to it.
package fanout
