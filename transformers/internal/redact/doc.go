// Package redact decides which member names hold secrets: the compiled
// form of a transformers.RedactConfig, which the engine's scan and
// canonical encoder consult for every member name of every payload.
package redact
