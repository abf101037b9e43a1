package elasticsearch

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe"
)

// ecsDoc is the part of an ECS document AppendECS writes that FromECS
// reads back: the ECS fields that hold a schema field as it is, and the
// rest under "auditpipe".
type ecsDoc struct {
	Timestamp string `json:"@timestamp"`
	Event     struct {
		ID      string `json:"id"`
		Action  string `json:"action"`
		Created string `json:"created"`
		Reason  string `json:"reason"`
	} `json:"event"`
	Message string `json:"message"`
	User    struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Email  string `json:"email"`
		Domain string `json:"domain"`
	} `json:"user"`
	Source struct {
		IP string `json:"ip"`
	} `json:"source"`
	UserAgent struct {
		Original string `json:"original"`
	} `json:"user_agent"`
	Labels    map[string]string `json:"labels"`
	AuditPipe struct {
		SchemaVersion string             `json:"schema_version"`
		Operation     string             `json:"operation"`
		Outcome       string             `json:"outcome"`
		Category      []string           `json:"category"`
		Source        auditpipe.Source   `json:"source"`
		Actor         auditpipe.Actor    `json:"actor"`
		Resource      auditpipe.Resource `json:"resource"`
		Tenant        auditpipe.Tenant   `json:"tenant"`
		Client        struct {
			IP string `json:"ip"`
		} `json:"client"`
		Details   json.RawMessage      `json:"details"`
		Labels    map[string]string    `json:"labels"`
		RawSHA256 string               `json:"raw_sha256"`
		Integrity *auditpipe.Integrity `json:"integrity"`
	} `json:"auditpipe"`
}

// FromECS rebuilds the event an ECS document was written from, for
// `auditpipe verify`: every schema field is stored either in its ECS
// field unchanged or under "auditpipe". Labels are the exception: ECS
// labels are dedotted, so an event that carries integrity also keeps its
// labels verbatim in auditpipe.labels, and those are read when present.
func FromECS(doc []byte) (auditpipe.Event, error) {
	var d ecsDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return auditpipe.Event{}, fmt.Errorf("ECS document: %w", err)
	}
	ap := &d.AuditPipe
	ev := auditpipe.Event{
		SchemaVersion: ap.SchemaVersion,
		ID:            d.Event.ID,
		Source:        ap.Source,
		Action:        d.Event.Action,
		Operation:     auditpipe.Operation(ap.Operation),
		Category:      ap.Category,
		Outcome:       auditpipe.Outcome(ap.Outcome),
		Reason:        d.Event.Reason,
		Message:       d.Message,
		Actor:         ap.Actor,
		Resource:      ap.Resource,
		Tenant:        ap.Tenant,
		Client:        auditpipe.Client{IP: d.Source.IP, UserAgent: d.UserAgent.Original},
		Details:       ap.Details,
		Labels:        d.Labels,
		RawSHA256:     ap.RawSHA256,
		Integrity:     ap.Integrity,
	}
	if ap.Labels != nil {
		ev.Labels = ap.Labels
	}
	if ev.Client.IP == "" {
		ev.Client.IP = ap.Client.IP
	}
	ev.Actor.ID, ev.Actor.Name, ev.Actor.Email, ev.Actor.Provider = d.User.ID, d.User.Name, d.User.Email, d.User.Domain
	var err error
	if ev.Time, err = time.Parse(time.RFC3339Nano, d.Timestamp); err != nil {
		return ev, fmt.Errorf("ECS document: @timestamp: %w", err)
	}
	if d.Event.Created != "" {
		if ev.ObservedTime, err = time.Parse(time.RFC3339Nano, d.Event.Created); err != nil {
			return ev, fmt.Errorf("ECS document: event.created: %w", err)
		}
	}
	return ev, nil
}
