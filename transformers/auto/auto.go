// Package auto is the "auto" format: it decodes a payload once, asks each
// candidate format whether the payload has its shape, and hands the decoded
// document to the first that says yes. The result names the format chosen
// and the field that decided, so a surprising choice can be explained.
package auto

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/auditpipe/auditpipe/transformers"
)

// Format is the format name.
const Format = "auto"

// Candidate is a format auto may choose.
type Candidate struct {
	Name        string
	Transformer transformers.Transformer
	Detector    transformers.Detector
}

// Transformer detects the format of each payload.
type Transformer struct {
	candidates []Candidate
	opts       transformers.Options
}

// New returns an auto transformer trying candidates in order: put the most
// specific shapes first.
func New(opts transformers.Options, candidates ...Candidate) (*Transformer, error) {
	if len(candidates) == 0 {
		return nil, errors.New("auto: no candidate formats")
	}
	for i, c := range candidates {
		if c.Name == "" || c.Transformer == nil || c.Detector == nil {
			return nil, fmt.Errorf("auto: candidate %d (%q) needs a name, a transformer and a detector", i, c.Name)
		}
	}
	return &Transformer{candidates: candidates, opts: opts}, nil
}

// FromRegistry makes every registered format that can detect itself a
// candidate, in the given order (or registration order when order is
// empty).
func FromRegistry(reg *transformers.Registry, opts transformers.Options, order ...string) (*Transformer, error) {
	if len(order) == 0 {
		order = reg.Names()
	}
	var cs []Candidate
	for _, name := range order {
		t, err := reg.Get(name)
		if err != nil {
			return nil, err
		}
		if d, ok := t.(transformers.Detector); ok {
			cs = append(cs, Candidate{Name: name, Transformer: t, Detector: d})
		}
	}
	return New(opts, cs...)
}

// Transform implements transformers.Transformer.
func (t *Transformer) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	res.Format = Format
	doc, err := transformers.DecodeWith(in, t.opts, Format)
	if err != nil {
		return err
	}
	if len(doc.Roots) == 0 {
		// Every NDJSON line was malformed: nothing to detect on.
		res.Errors = append(res.Errors, doc.Errors...)
		doc.Close()
		return nil
	}
	first := doc.First()
	for _, c := range t.candidates {
		decidedBy, ok := c.Detector.Detect(first, in.Meta)
		if !ok {
			continue
		}
		// The document is the candidate's now: it closes it.
		in.Body, in.Value, in.Msgpack, in.Doc = nil, nil, nil, doc
		res.Format = ""
		err := c.Transformer.Transform(ctx, in, res)
		res.DecidedBy = decidedBy
		if res.Format == "" {
			res.Format = c.Name
		}
		return err
	}
	doc.Close()
	names := make([]string, len(t.candidates))
	for i, c := range t.candidates {
		names[i] = c.Name
	}
	return &transformers.Error{
		Format: Format, Item: -1, Path: "$", Kind: transformers.ErrUnsupported,
		Expected: "a payload of a known format (" + strings.Join(names, ", ") + ")", Got: "an unrecognised shape",
	}
}
