package app

import (
	"slices"
	"strings"

	"github.com/auditpipe/auditpipe"
)

// Apps spell actions in many ways (secret_set, member.role_changed,
// auth.login_failed, dev.teabar.audit.member.invited), so every flavor
// reads them the same way: split into lowercase words at '.', '_', '-',
// '/', ':' and spaces; a trailing outcome word (failed, denied, ...) is the
// outcome, not the verb; the verb is the last remaining word found in
// verbs; the kind of thing acted on is the nearest word before the verb
// found in kinds.

// verbs maps action words, imperative and past tense, to operations. The
// yoq verbs are judged by what they do to the system: set is an upsert
// (update: create or replace cannot be told apart), apply and rollback
// change an app's declared state (update), restore overwrites state
// (update), rotate replaces key material (update), register adds an agent
// (create), drain and backup are operational runs (execute).
var verbs = map[string]auditpipe.Operation{
	"create": opCreate, "created": opCreate, "add": opCreate, "added": opCreate, "invite": opCreate, "invited": opCreate,
	"join": opCreate, "joined": opCreate, "register": opCreate, "registered": opCreate, "upload": opCreate,
	"uploaded": opCreate, "import": opCreate, "imported": opCreate, "provision": opCreate, "provisioned": opCreate,
	"signup": opCreate,

	"read": opRead, "get": opRead, "list": opRead, "listed": opRead, "view": opRead, "viewed": opRead, "export": opRead,
	"exported": opRead, "download": opRead, "downloaded": opRead, "search": opRead, "searched": opRead, "accessed": opRead,

	"update": opUpdate, "updated": opUpdate, "set": opUpdate, "change": opUpdate, "changed": opUpdate, "edit": opUpdate,
	"edited": opUpdate, "modify": opUpdate, "modified": opUpdate, "publish": opUpdate, "published": opUpdate,
	"unpublish": opUpdate, "unpublished": opUpdate, "rename": opUpdate, "renamed": opUpdate, "enable": opUpdate,
	"enabled": opUpdate, "disable": opUpdate, "disabled": opUpdate, "rotate": opUpdate, "rotated": opUpdate,
	"reset": opUpdate, "apply": opUpdate, "applied": opUpdate, "rollback": opUpdate, "restore": opUpdate,
	"restored": opUpdate, "assign": opUpdate, "assigned": opUpdate, "unassign": opUpdate, "unassigned": opUpdate,
	"grant": opUpdate, "granted": opUpdate, "move": opUpdate, "moved": opUpdate, "lock": opUpdate, "locked": opUpdate,
	"unlock": opUpdate, "unlocked": opUpdate, "suspend": opUpdate, "suspended": opUpdate, "activate": opUpdate,
	"activated": opUpdate, "deactivate": opUpdate, "deactivated": opUpdate, "share": opUpdate,
	"shared": opUpdate, "unshare": opUpdate, "unshared": opUpdate,

	"delete": opDelete, "deleted": opDelete, "remove": opDelete, "removed": opDelete, "revoke": opDelete, "revoked": opDelete,
	"destroy": opDelete, "destroyed": opDelete, "purge": opDelete, "purged": opDelete, "unregister": opDelete, "unregistered": opDelete,
	"leave": opDelete, "left": opDelete,

	"login": auditpipe.OperationLogin, "signin": auditpipe.OperationLogin, "logon": auditpipe.OperationLogin,
	"logout": auditpipe.OperationLogout, "signout": auditpipe.OperationLogout, "logoff": auditpipe.OperationLogout,

	"execute": opExecute, "executed": opExecute, "run": opExecute, "start": opExecute, "started": opExecute,
	"stop": opExecute, "stopped": opExecute, "restart": opExecute, "restarted": opExecute, "trigger": opExecute,
	"triggered": opExecute, "deploy": opExecute, "deployed": opExecute, "drain": opExecute, "drained": opExecute,
	"backup": opExecute, "cancel": opExecute, "canceled": opExecute, "cancelled": opExecute, "retry": opExecute,
	"retried": opExecute, "approve": opExecute, "approved": opExecute, "reject": opExecute, "rejected": opExecute,
	"scale": opExecute, "scaled": opExecute,
}

const (
	opCreate  = auditpipe.OperationCreate
	opRead    = auditpipe.OperationRead
	opUpdate  = auditpipe.OperationUpdate
	opDelete  = auditpipe.OperationDelete
	opExecute = auditpipe.OperationExecute
)

// kinds maps the thing an action is about to ECS event categories.
// Secrets and policies are configuration that decides access, hence both
// iam and configuration; agents are nodes joining and leaving (host);
// backups and restores copy the state database (database).
var kinds = map[string][]string{
	"auth": catAuthn, "authentication": catAuthn, "login": catAuthn, "logout": catAuthn, "session": catAuthn,
	"sso": catAuthn, "mfa": catAuthn,

	"member": catIAM, "members": catIAM, "membership": catIAM, "user": catIAM, "users": catIAM, "role": catIAM, "roles": catIAM,
	"group": catIAM, "groups": catIAM, "team": catIAM, "teams": catIAM, "permission": catIAM, "permissions": catIAM,
	"invitation": catIAM, "invite": catIAM, "token": catIAM, "tokens": catIAM, "key": catIAM, "keys": catIAM, "apikey": catIAM,
	"credential": catIAM, "credentials": catIAM, "password": catIAM, "account": catIAM,

	"secret": catIAMConfig, "secrets": catIAMConfig, "policy": catIAMConfig, "policies": catIAMConfig,

	"environment": catConfig, "project": catConfig, "organization": catConfig, "org": catConfig, "blueprint": catConfig,
	"settings": catConfig, "setting": catConfig, "config": catConfig, "configuration": catConfig, "app": catConfig,
	"apps": catConfig, "application": catConfig, "workload": catConfig, "deployment": catConfig, "webhook": catConfig,
	"integration": catConfig, "template": catConfig,

	"agent": catHost, "agents": catHost, "node": catHost, "nodes": catHost, "host": catHost, "cluster": catHost, "machine": catHost,

	"backup": catDatabase, "restore": catDatabase, "database": catDatabase, "db": catDatabase, "snapshot": catDatabase,
}

var (
	catAuthn     = []string{"authentication"}
	catIAM       = []string{"iam"}
	catIAMConfig = []string{"iam", "configuration"}
	catConfig    = []string{"configuration"}
	catHost      = []string{"host"}
	catDatabase  = []string{"database"}
)

// outcomeWords end an action that records its own outcome (login_failed).
var outcomeWords = map[string]auditpipe.Outcome{
	"failed": auditpipe.OutcomeFailure, "failure": auditpipe.OutcomeFailure, "fail": auditpipe.OutcomeFailure,
	"error": auditpipe.OutcomeFailure, "errored": auditpipe.OutcomeFailure,
	"denied": auditpipe.OutcomeDenied, "forbidden": auditpipe.OutcomeDenied,
	"unauthorized": auditpipe.OutcomeDenied, "blocked": auditpipe.OutcomeDenied,
	"succeeded": auditpipe.OutcomeSuccess, "success": auditpipe.OutcomeSuccess,
}

// actionInfo is an action split into words.
type actionInfo struct {
	words   []string
	verb    int               // index of the verb in words, -1 when none is known
	outcome auditpipe.Outcome // from a trailing outcome word, else ""
}

func analyze(action string) actionInfo {
	words := strings.FieldsFunc(strings.ToLower(action), func(r rune) bool {
		return r == '.' || r == '_' || r == '-' || r == '/' || r == ':' || r == ' '
	})
	a := actionInfo{verb: -1}
	if n := len(words); n > 0 {
		if o, ok := outcomeWords[words[n-1]]; ok {
			a.outcome, words = o, words[:n-1]
		}
	}
	a.words = words
	for i := len(words) - 1; i >= 0; i-- {
		if _, ok := verbs[words[i]]; ok {
			a.verb = i
			break
		}
	}
	return a
}

func (a actionInfo) operation() auditpipe.Operation {
	if a.verb < 0 {
		return auditpipe.OperationOther
	}
	return verbs[a.words[a.verb]]
}

// categories looks for the kind before the verb (auth.token_created is
// about a token: iam, not authentication), then at the verb itself (yoq's
// bare "backup"); logins without a kind are authentication.
func (a actionInfo) categories() []string {
	end := a.verb
	if end < 0 {
		end = len(a.words)
	}
	for i := end - 1; i >= 0; i-- {
		if c, ok := kinds[a.words[i]]; ok {
			return slices.Clone(c)
		}
	}
	if a.verb >= 0 {
		if c, ok := kinds[a.words[a.verb]]; ok {
			return slices.Clone(c)
		}
		if op := a.operation(); op == auditpipe.OperationLogin || op == auditpipe.OperationLogout {
			return slices.Clone(catAuthn)
		}
	}
	return nil
}

// Operation is the normalized operation of an action: the last word that
// is a known verb, imperative or past tense, decides; none is other.
//
//	yoq     add, register -> create; list -> read; set, apply, rollback,
//	        restore, rotate -> update; delete -> delete; drain, backup -> execute
//	Teabar  invited, created, joined -> create; role_changed,
//	        settings_updated, published -> update; removed, deleted,
//	        revoked -> delete; login, login_failed -> login; logout ->
//	        logout; started, stopped -> execute
func Operation(action string) auditpipe.Operation { return analyze(action).operation() }

// Category is the ECS categories of an action, from the kind of thing it
// acts on (auth.* -> authentication, member.* and auth.token_* -> iam,
// environment.*, project.*, organization.*, blueprint.* -> configuration,
// secret_* and policy_* -> iam and configuration, agent_* -> host); nil
// when nothing is known.
func Category(action string) []string { return analyze(action).categories() }

// ActionOutcome is the outcome an action name states (auth.login_failed ->
// failure, *_denied -> denied), or otherwise when it states none.
func ActionOutcome(action string, otherwise auditpipe.Outcome) auditpipe.Outcome {
	if o := analyze(action).outcome; o != "" {
		return o
	}
	return otherwise
}
