package transformers

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
)

// decodeValue converts an already-decoded payload (msgpack maps from Fluent
// Bit) into a document without going through JSON text.
func decodeValue(val any, lim Limits, format string) (*Document, error) {
	t := jsontree.GetTree()
	c := converter{t: t, lim: lim, format: format}
	v, err := c.convert(val, newNode(format, nil), 1)
	if err == nil && c.size > lim.MaxPayloadBytes {
		err = &Error{Format: format, Item: -1, Path: "$", Kind: ErrTooLarge,
			Expected: fmt.Sprintf("at most %d bytes", lim.MaxPayloadBytes), Got: fmt.Sprintf("about %d bytes", c.size)}
	}
	if err == nil {
		if v = t.Finish(v); v == nil {
			err = parserRefused(newNode(format, nil))
		}
	}
	if err != nil {
		jsontree.PutTree(t, false, maxPooled)
		return nil, err
	}
	d := newDocument()
	// The tree points into val's strings, not into pooled memory.
	d.Roots, d.tree = append(d.Roots, Root{Node: newNode(format, v)}), t
	return d, nil
}

type converter struct {
	t      *jsontree.Tree
	lim    Limits
	format string
	size   int
}

func (c *converter) convert(val any, at Node, depth int) (*jsontree.Value, *Error) {
	if depth > c.lim.MaxDepth {
		return nil, at.Err(ErrTooDeep, fmt.Sprintf("at most %d levels of nesting", c.lim.MaxDepth))
	}
	c.size += 8
	switch x := val.(type) {
	case nil:
		return c.t.Literal(jsontree.Null), nil
	case bool:
		if x {
			return c.t.Literal(jsontree.True), nil
		}
		return c.t.Literal(jsontree.False), nil
	case string:
		return c.str(x, at)
	case []byte:
		return c.str(string(x), at)
	case json.Number:
		if !jsonsyntax.ValidNumber([]byte(x)) {
			return nil, at.Err(ErrSyntax, "a JSON number")
		}
		return c.t.Number(string(x)), nil
	case time.Time:
		return c.t.String(x.UTC().Format(time.RFC3339Nano)), nil
	case float32:
		return c.float(float64(x), at)
	case float64:
		return c.float(x, at)
	case map[string]any:
		if err := c.members(len(x), at, true); err != nil {
			return nil, err
		}
		o, i := c.t.Object(len(x)), 0
		for k, v := range x {
			cv, err := c.member(k, v, at, depth)
			if err != nil {
				return nil, err
			}
			c.t.SetMember(o, i, k, cv)
			i++
		}
		return o, nil
	case map[any]any:
		if err := c.members(len(x), at, true); err != nil {
			return nil, err
		}
		o, i := c.t.Object(len(x)), 0
		for k, v := range x {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case []byte:
				ks = string(kk)
			default:
				return nil, at.Errf(ErrType, "string member names", fmt.Sprintf("member name of type %T", k))
			}
			cv, err := c.member(ks, v, at, depth)
			if err != nil {
				return nil, err
			}
			c.t.SetMember(o, i, ks, cv)
			i++
		}
		return o, nil
	case []any:
		if err := c.members(len(x), at, false); err != nil {
			return nil, err
		}
		arr := c.t.Array(len(x))
		for i, e := range x {
			cv, err := c.convert(e, at.child(pathSeg{idx: i}, nil), depth+1)
			if err != nil {
				return nil, err
			}
			c.t.SetElement(arr, i, cv)
		}
		return arr, nil
	}
	rv := reflect.ValueOf(val)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return c.t.Number(strconv.FormatInt(rv.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return c.t.Number(strconv.FormatUint(rv.Uint(), 10)), nil
	}
	return nil, at.Errf(ErrType, "a JSON-compatible value", fmt.Sprintf("Go type %T", val))
}

// members refuses an object or array of more than MaxMembers.
func (c *converter) members(n int, at Node, object bool) *Error {
	if n <= c.lim.MaxMembers {
		return nil
	}
	e := at.Err(ErrTooManyMembers, jsonscan.MembersExpected(c.lim.MaxMembers, object))
	e.Got = ""
	return e
}

func (c *converter) member(k string, v any, at Node, depth int) (*jsontree.Value, *Error) {
	child := at.child(pathSeg{key: k, idx: -1}, nil)
	if len(k) > c.lim.MaxStringLength {
		return nil, child.Err(ErrStringTooLong, fmt.Sprintf("member names of at most %d bytes", c.lim.MaxStringLength))
	}
	if !utf8.ValidString(k) {
		return nil, child.Err(ErrInvalidUTF8, "UTF-8 member name")
	}
	c.size += len(k)
	return c.convert(v, child, depth+1)
}

func (c *converter) str(s string, at Node) (*jsontree.Value, *Error) {
	if len(s) > c.lim.MaxStringLength {
		return nil, at.Err(ErrStringTooLong, fmt.Sprintf("at most %d bytes", c.lim.MaxStringLength))
	}
	if !utf8.ValidString(s) {
		return nil, at.Err(ErrInvalidUTF8, "UTF-8 string")
	}
	c.size += len(s)
	return c.t.String(s), nil
}

func (c *converter) float(f float64, at Node) (*jsontree.Value, *Error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, at.Err(ErrValue, "a finite number")
	}
	return c.t.Number(string(jsontree.AppendES6Number(nil, f))), nil
}
