// Package opensearch is the output that indexes audit events into
// OpenSearch, self-managed or Amazon OpenSearch Service (managed domains
// and Serverless collections), as Elastic Common Schema documents.
//
// It writes exactly what the elasticsearch output writes, with the same
// engine (outputs/internal/bulk: create actions keyed by event id, item
// 409 delivered, 429/5xx retried, other 4xx dead-lettered) and the same
// encoder (elasticsearch.AppendECS); only the client differs. The
// official opensearch-go client is used because go-elasticsearch refuses
// every server that does not send X-Elastic-Product, which OpenSearch
// never does. Requests are signed with AWS Signature Version 4 when
// aws_sigv4 is set: service "es" for a managed domain, "aoss" for
// Serverless, with the SDK's default credential chain (environment, shared
// profile, IRSA web identity, ECS and EC2 roles) unless keys are given.
package opensearch
