package auditpipe

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the version of the Event schema this package produces.
const SchemaVersion = "1"

// Event is one audit event in the common schema. Its JSON form uses
// snake_case names and omits empty fields.
type Event struct {
	SchemaVersion string    `json:"schema_version"`
	ID            string    `json:"id"`
	Time          time.Time `json:"time"`
	ObservedTime  time.Time `json:"observed_time,omitzero"`
	Source        Source    `json:"source"`
	// Action is the source's own action name, verbatim (stack.create, secret_set).
	Action    string    `json:"action"`
	Operation Operation `json:"operation"`
	// Category, like Labels, is read-only once the event is made: events
	// may share it.
	Category []string `json:"category,omitempty"`
	Outcome  Outcome  `json:"outcome"`
	Reason   string   `json:"reason,omitempty"`
	Message  string   `json:"message,omitempty"`
	Actor    Actor    `json:"actor,omitzero"`
	Resource Resource `json:"resource,omitzero"`
	Tenant   Tenant   `json:"tenant,omitzero"`
	Client   Client   `json:"client,omitzero"`
	// Details holds the source-specific payload as a JSON object, with
	// secrets already redacted. It is kept as JSON text rather than a map
	// because it is usually the bulk of an event and is only ever
	// re-serialized, never inspected, on the way to an output.
	Details json.RawMessage `json:"details,omitempty"`
	// Labels are read-only once the event is made: front doors share one
	// map between the events of a batch that carry the same labels.
	Labels    map[string]string `json:"labels,omitempty"`
	RawSHA256 string            `json:"raw_sha256,omitempty"`
	Integrity *Integrity        `json:"integrity,omitempty"`

	// Encoded, when set, is the event's JSON form without its integrity
	// member, exactly as eventjson.Append writes it, and read-only. The
	// sidecar keeps the queue record it decoded the event from, so that
	// outputs ship those bytes instead of encoding the event again
	// (eventjson.Append appends them, with the integrity member when the
	// event is sealed). Whoever changes any other field of an event that
	// carries it must clear it. It is never part of the JSON form.
	Encoded []byte `json:"-"`
}

// Source says where an event came from.
type Source struct {
	// Type is the family of the source: spacelift, alertmanager, app, k8s
	// (external transformers may add their own).
	Type string `json:"type"`
	// Name is the configured source name (sidecar source, Fluent Bit tag).
	Name string `json:"name,omitempty"`
	// Format is the decoder that produced the event (spacelift, app/yoq, ...).
	Format string `json:"format,omitempty"`
}

// Actor is who performed the action.
type Actor struct {
	Type     ActorType `json:"type,omitempty"`
	ID       string    `json:"id,omitempty"`
	UID      string    `json:"uid,omitempty"`
	Name     string    `json:"name,omitempty"`
	Email    string    `json:"email,omitempty"`
	Provider string    `json:"provider,omitempty"`
}

// Resource is what the action was performed on.
type Resource struct {
	Type       string `json:"type,omitempty"`
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	APIGroup   string `json:"api_group,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
}

// Tenant locates the event in the source's own tenancy model.
type Tenant struct {
	Account string `json:"account,omitempty"`
	Org     string `json:"org,omitempty"`
	Project string `json:"project,omitempty"`
}

// Client is the network client that made the request.
type Client struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Integrity is optional tamper evidence: a hash chain per stream, optionally
// signed.
type Integrity struct {
	Stream    string `json:"stream,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	PrevHash  string `json:"prev_hash,omitempty"`
	Hash      string `json:"hash,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Operation is the normalized verb of an action.
type Operation string

// The operations an event can have.
const (
	OperationCreate  Operation = "create"
	OperationRead    Operation = "read"
	OperationUpdate  Operation = "update"
	OperationDelete  Operation = "delete"
	OperationLogin   Operation = "login"
	OperationLogout  Operation = "logout"
	OperationExecute Operation = "execute"
	OperationOther   Operation = "other"
)

// Operations lists every valid Operation.
func Operations() []Operation {
	return []Operation{OperationCreate, OperationRead, OperationUpdate, OperationDelete,
		OperationLogin, OperationLogout, OperationExecute, OperationOther}
}

// Valid reports whether o is one of the schema's operations.
func (o Operation) Valid() bool {
	switch o {
	case OperationCreate, OperationRead, OperationUpdate, OperationDelete,
		OperationLogin, OperationLogout, OperationExecute, OperationOther:
		return true
	}
	return false
}

// Outcome is how the action ended.
type Outcome string

// The outcomes an event can have.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	OutcomeDenied  Outcome = "denied"
	OutcomeUnknown Outcome = "unknown"
)

// Outcomes lists every valid Outcome.
func Outcomes() []Outcome {
	return []Outcome{OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeUnknown}
}

// Valid reports whether o is one of the schema's outcomes.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeUnknown:
		return true
	}
	return false
}

// ActorType classifies who performed an action.
type ActorType string

// The actor types an event can have.
const (
	ActorUser    ActorType = "user"
	ActorService ActorType = "service"
	ActorToken   ActorType = "token"
	ActorSystem  ActorType = "system"
	ActorUnknown ActorType = "unknown"
)

// ActorTypes lists every valid ActorType.
func ActorTypes() []ActorType {
	return []ActorType{ActorUser, ActorService, ActorToken, ActorSystem, ActorUnknown}
}

// Valid reports whether t is one of the schema's actor types.
func (t ActorType) Valid() bool {
	switch t {
	case ActorUser, ActorService, ActorToken, ActorSystem, ActorUnknown:
		return true
	}
	return false
}
