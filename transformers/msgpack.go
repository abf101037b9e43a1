package transformers

import (
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
	"github.com/auditpipe/auditpipe/transformers/internal/msgpack"
)

// decodeMsgpack builds a document from one msgpack value (a Fluent Bit
// record) straight into the tree (see internal/msgpack). The tree's
// strings point into b, which the caller never changes (Input.Msgpack),
// so events may keep them (Document.Strings).
func decodeMsgpack(b []byte, lim Limits, format string) (*Document, error) {
	if len(b) > lim.MaxPayloadBytes {
		return nil, &Error{Format: format, Item: -1, Path: "$", Kind: ErrTooLarge,
			Expected: fmt.Sprintf("at most %d bytes", lim.MaxPayloadBytes), Got: fmt.Sprintf("%d bytes", len(b))}
	}
	d := newDocument()
	d.tree = jsontree.GetTree()
	d.scratch = bufPool.Get().(*[]byte)
	root, buf, err := msgpack.Decode(b, lim.scan(), d.tree, (*d.scratch)[:0])
	// The scratch buffer is the document's while the tree points into it;
	// a grown copy replaces it (the old array stays alive while referenced).
	*d.scratch = buf
	if err != nil {
		d.Close()
		return nil, &Error{Format: format, Item: -1, Path: appendStepsReversed("$", err.Steps),
			Kind: faultKind(err.Fault), Expected: err.Expected, Got: err.Got, Detail: err.Detail}
	}
	if root = d.tree.Finish(root); root == nil {
		d.Close()
		return nil, parserRefused(newNode(format, nil))
	}
	d.kept = b
	d.Roots = append(d.Roots, Root{Node: newNode(format, root)})
	return d, nil
}

// MsgpackTime reads Fluent Bit's timestamps: EventTime (extension type 0:
// big-endian uint32 seconds, uint32 nanoseconds), integer seconds or float
// seconds.
func MsgpackTime(b []byte) (time.Time, []byte, error) { return msgpack.Time(b) }
