// Package githubaudit maps GitHub organization audit-log events to
// auditpipe events. It is the transform function of the example external
// transformer in examples/transformer-plugin: main.go serves it with
// external.Serve, and the tests here run it in-process.
//
// Input: the events as GitHub's audit-log streaming and REST API deliver
// them (https://docs.github.com/en/organizations/keeping-your-organization-secure/managing-security-settings-for-your-organization/reviewing-the-audit-log-for-your-organization),
// one JSON object, a JSON array of them (a page of GET
// /orgs/{org}/audit-log) or NDJSON (a stream or an export). The fields
// read are @timestamp (epoch milliseconds; created_at as a fallback),
// action (repo.create, team.add_member, ...), actor and actor_id, org,
// business, repo, user, team, actor_ip, user_agent, _document_id,
// operation_type and actor_location.country_code. The whole entry becomes
// the event's details, canonical and with secret-looking members
// redacted.
//
// Id rule: _document_id, GitHub's unique id of the entry; an entry without
// one gets the SHA-256 of its canonical JSON, so a re-sent entry keeps its
// id either way.
package githubaudit
