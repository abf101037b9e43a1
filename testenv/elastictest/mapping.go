package elastictest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// fieldLimit is index.mapping.total_fields.limit's default.
const fieldLimit = 1000

type kind uint8

const (
	kindObject kind = iota + 1
	kindString      // text, keyword and their relatives: any scalar is accepted
	kindLong
	kindDouble
	kindBool
	kindDate
	kindIP
	kindOpaque // flattened, enabled: false, types not emulated: anything goes below
)

type field struct {
	kind   kind
	esType string // as Elasticsearch names it in errors
	// dynamic is an object's own dynamic setting ("true", "false",
	// "strict"), "" to inherit its parent's.
	dynamic string
}

// mapping is an index's fields by dotted path.
type mapping struct {
	fields        map[string]field
	dynamic       string // the root's: "true", "false" or "strict"
	dateDetection bool
}

func newMapping() *mapping {
	return &mapping{fields: map[string]field{}, dynamic: "true", dateDetection: true}
}

func (m *mapping) clone() *mapping {
	c := *m
	c.fields = maps.Clone(m.fields)
	return &c
}

// parseMapping reads the mappings object of an index template.
func parseMapping(raw json.RawMessage) (*mapping, error) {
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, errStatus(http.StatusBadRequest, "mapper_parsing_exception", "Failed to parse mapping: %v", err)
	}
	m := newMapping()
	if d, ok := root["dynamic"]; ok {
		m.dynamic = fmt.Sprint(d)
	}
	if d, ok := root["date_detection"].(bool); ok {
		m.dateDetection = d
	}
	props, _ := root["properties"].(map[string]any)
	if err := m.parseProperties("", props); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mapping) parseProperties(prefix string, props map[string]any) error {
	for name, v := range props {
		def, ok := v.(map[string]any)
		if !ok {
			return errStatus(http.StatusBadRequest, "mapper_parsing_exception", "Expected map for property [%s] but got %T", name, v)
		}
		path := prefix + name
		typ, _ := def["type"].(string)
		f := field{esType: typ}
		switch typ {
		case "", "object", "nested":
			f.kind, f.esType = kindObject, "object"
			if d, ok := def["dynamic"]; ok {
				f.dynamic = fmt.Sprint(d)
			}
			if e, ok := def["enabled"].(bool); ok && !e {
				f.kind = kindOpaque
			}
		case "keyword", "text", "match_only_text", "wildcard", "constant_keyword", "version", "search_as_you_type", "binary":
			f.kind = kindString
		case "long", "integer", "short", "byte", "unsigned_long":
			f.kind = kindLong
		case "double", "float", "half_float", "scaled_float":
			f.kind = kindDouble
		case "boolean":
			f.kind = kindBool
		case "date", "date_nanos":
			f.kind = kindDate
		case "ip":
			f.kind = kindIP
		case "flattened", "flat_object", "geo_point", "geo_shape", "point", "shape", "dense_vector", "sparse_vector", "histogram", "alias", "join", "percolator", "rank_feature", "rank_features":
			f.kind = kindOpaque
		default:
			return errStatus(http.StatusBadRequest, "mapper_parsing_exception", "No handler for type [%s] declared on field [%s]", typ, name)
		}
		m.fields[path] = f
		if sub, ok := def["properties"].(map[string]any); ok && f.kind == kindObject {
			if err := m.parseProperties(path+".", sub); err != nil {
				return err
			}
		}
	}
	return nil
}

var metadataFields = map[string]bool{
	"_id": true, "_index": true, "_source": true, "_routing": true, "_version": true, "_seq_no": true,
	"_primary_term": true, "_ignored": true, "_field_names": true, "_data_stream_timestamp": true,
	"_doc_count": true, "_tier": true, "_nested_path": true, "_tsid": true, "_feature": true,
}

// checker parses one document against an index's mapping as dynamic
// mapping would, collecting the fields it adds; none are added unless the
// whole document is accepted.
type checker struct {
	m             *mapping
	id            string
	includeSource bool
	added         map[string]field
	err           *esError
	// path is the dotted path of the value being checked; lookups index
	// the maps with string(path), which does not allocate.
	path []byte
}

func (c *checker) lookup() (field, bool) {
	if f, ok := c.m.fields[string(c.path)]; ok {
		return f, true
	}
	f, ok := c.added[string(c.path)]
	return f, ok
}

func (c *checker) add(f field) {
	if c.added == nil {
		c.added = map[string]field{}
	}
	c.added[string(c.path)] = f
}

func (c *checker) fail(typ, reason string, cause *esError) {
	if c.err == nil {
		c.err = &esError{Type: typ, Reason: reason, CausedBy: cause}
	}
}

// check validates doc, parsing it with p. It returns the fields to add to
// the mapping or the error Elasticsearch would give the item (always a
// 400).
func (m *mapping) check(p *fastjson.Parser, doc []byte, id string, includeSource, dataStream bool) (map[string]field, *esError) {
	v, err := p.ParseBytes(doc)
	if err != nil {
		return nil, &esError{Type: "document_parsing_exception", Reason: "failed to parse",
			CausedBy: &esError{Type: "json_parse_exception", Reason: err.Error()}}
	}
	obj, err := v.Object()
	if err != nil {
		return nil, &esError{Type: "document_parsing_exception", Reason: "failed to parse: the document must be a JSON object",
			CausedBy: &esError{Type: "not_x_content_exception", Reason: "Compressor detection can only be called on some xcontent bytes or compressed xcontent bytes"}}
	}
	c := &checker{m: m, id: id, includeSource: includeSource, path: make([]byte, 0, 128)}
	obj.Visit(func(k []byte, _ *fastjson.Value) {
		if k[0] == '_' && metadataFields[string(k)] {
			c.fail("document_parsing_exception", fmt.Sprintf("[1:2] Field [%s] is a metadata field and cannot be added inside a document. Use the index API request parameters.", k), nil)
		}
	})
	c.object(obj, m.dynamic)
	if c.err == nil && dataStream {
		if ts := obj.Get("@timestamp"); ts == nil || ts.Type() == fastjson.TypeNull {
			c.fail("document_parsing_exception", "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing",
				&esError{Type: "illegal_argument_exception", Reason: "data stream timestamp field [@timestamp] is missing"})
		}
	}
	if c.err == nil && len(c.added) > 0 && len(m.fields)+len(c.added) > fieldLimit {
		reason := fmt.Sprintf("Limit of total fields [%d] has been exceeded while adding new fields [%d]", fieldLimit, len(c.added))
		c.fail("document_parsing_exception", "[1:1] failed to parse: "+reason, &esError{Type: "illegal_argument_exception", Reason: reason})
	}
	if c.err != nil {
		return nil, c.err
	}
	return c.added, nil
}

// object walks an object's members, whose paths start with c.path; mode
// is the dynamic setting in force.
func (c *checker) object(obj *fastjson.Object, mode string) {
	prefix := len(c.path)
	var small [16][]byte
	seen := small[:0]
	var many map[string]bool
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if c.err != nil {
			return
		}
		// Elasticsearch refuses duplicate keys, which fastjson accepts.
		dup := false
		if many == nil && len(seen) == len(small) {
			many = make(map[string]bool, 2*len(small))
			for _, s := range seen {
				many[string(s)] = true
			}
		}
		if many != nil {
			dup = many[string(k)]
			many[string(k)] = true
		} else {
			for _, s := range seen {
				if bytes.Equal(s, k) {
					dup = true
					break
				}
			}
			seen = append(seen, k)
		}
		if dup {
			c.fail("document_parsing_exception", fmt.Sprintf("[1:1] failed to parse: Duplicate field '%s'", k),
				&esError{Type: "json_parse_exception", Reason: fmt.Sprintf("Duplicate field '%s'", k)})
			return
		}
		if len(bytes.TrimSpace(k)) == 0 {
			c.fail("document_parsing_exception", "[1:1] field name cannot be an empty string", nil)
			return
		}
		c.path = c.path[:prefix]
		m := mode
		// A dotted name is shorthand for nested objects.
		rest := k
		for {
			i := bytes.IndexByte(rest, '.')
			if i < 0 {
				break
			}
			part := rest[:i]
			rest = rest[i+1:]
			if len(part) == 0 || len(rest) == 0 {
				c.fail("document_parsing_exception", fmt.Sprintf("[1:1] object field starting or ending with a [.] makes object resolution ambiguous: [%s]", k), nil)
				return
			}
			c.path = append(c.path, part...)
			f, known := c.lookup()
			switch {
			case known && f.kind == kindOpaque:
				return
			case known && f.kind != kindObject:
				c.fail("document_parsing_exception", fmt.Sprintf("[1:1] Could not dynamically add mapping for field [%s]. Existing mapping for [%s] must be of type object but found [%s].", k, c.path, f.esType), nil)
				return
			case !known && m == "false":
				return
			case !known && m == "strict":
				c.strict(part)
				return
			case !known:
				c.add(field{kind: kindObject, esType: "object"})
			case f.dynamic != "":
				m = f.dynamic
			}
			c.path = append(c.path, '.')
		}
		if len(rest) == 0 {
			c.fail("document_parsing_exception", fmt.Sprintf("[1:1] object field starting or ending with a [.] makes object resolution ambiguous: [%s]", k), nil)
			return
		}
		c.path = append(c.path, rest...)
		c.value(rest, v, m)
	})
	c.path = c.path[:prefix]
}

func (c *checker) strict(name []byte) {
	parent := strings.TrimSuffix(string(c.path[:len(c.path)-len(name)]), ".")
	if parent == "" {
		parent = "_doc"
	}
	c.fail("strict_dynamic_mapping_exception", fmt.Sprintf("[1:1] mapping set to strict, dynamic introduction of [%s] within [%s] is not allowed", name, parent), nil)
}

// value checks v at c.path, whose last segment is name.
func (c *checker) value(name []byte, v *fastjson.Value, mode string) {
	f, known := c.lookup()
	switch {
	case known && f.kind == kindOpaque:
		return
	case !known && mode == "false":
		return // not mapped, kept in _source only
	case !known && mode == "strict" && v.Type() != fastjson.TypeNull:
		c.strict(name)
		return
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, e := range arr {
			c.value(name, e, mode)
			if !known {
				f, known = c.lookup()
			}
		}
		return
	case fastjson.TypeObject:
		if known && f.kind != kindObject {
			c.fail("document_parsing_exception", c.parseFailure(f, v),
				&esError{Type: "illegal_state_exception", Reason: "Can't get text on a START_OBJECT"})
			return
		}
		if !known {
			c.add(field{kind: kindObject, esType: "object"})
		} else if f.dynamic != "" {
			mode = f.dynamic
		}
		obj, _ := v.Object()
		n := len(c.path)
		c.path = append(c.path, '.')
		c.object(obj, mode)
		c.path = c.path[:n]
		return
	}
	if known && f.kind == kindObject {
		c.fail("document_parsing_exception", fmt.Sprintf("[1:1] object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", c.path, name), nil)
		return
	}
	if !known {
		c.add(c.infer(v))
		return
	}
	if cause := compatible(f, v); cause != "" {
		c.fail("document_parsing_exception", c.parseFailure(f, v),
			&esError{Type: "illegal_argument_exception", Reason: cause})
	}
}

func (c *checker) parseFailure(f field, v *fastjson.Value) string {
	msg := fmt.Sprintf("[1:1] failed to parse field [%s] of type [%s] in document with id '%s'.", c.path, f.esType, c.id)
	if c.includeSource {
		preview := string(v.MarshalTo(nil))
		if s, err := v.StringBytes(); err == nil {
			preview = string(s)
		}
		if len(preview) > 64 {
			preview = preview[:64] + "..."
		}
		msg += fmt.Sprintf(" Preview of field's value: '%s'", preview)
	}
	return msg
}

// infer is dynamic mapping's choice for a new scalar.
func (c *checker) infer(v *fastjson.Value) field {
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		if c.m.dateDetection && isDate(string(s)) {
			return field{kind: kindDate, esType: "date"}
		}
		return field{kind: kindString, esType: "text"}
	case fastjson.TypeNumber:
		if strings.ContainsAny(string(v.MarshalTo(nil)), ".eE") {
			return field{kind: kindDouble, esType: "float"}
		}
		return field{kind: kindLong, esType: "long"}
	default:
		return field{kind: kindBool, esType: "boolean"}
	}
}

// compatible says why v cannot go into f, or "" when it can (with the
// coercions Elasticsearch applies by default).
func compatible(f field, v *fastjson.Value) string {
	if f.kind == kindString {
		return ""
	}
	t := v.Type()
	var s string
	if t == fastjson.TypeString {
		b, _ := v.StringBytes()
		s = string(b)
	}
	switch f.kind {
	case kindString:
		return ""
	case kindLong, kindDouble:
		switch t {
		case fastjson.TypeNumber:
			return ""
		case fastjson.TypeString:
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return ""
			}
			return fmt.Sprintf("For input string: %q", s)
		}
		return fmt.Sprintf("Current token (%s) not numeric, can not use numeric value accessors", token(t))
	case kindBool:
		if t == fastjson.TypeTrue || t == fastjson.TypeFalse || (t == fastjson.TypeString && (s == "true" || s == "false" || s == "")) {
			return ""
		}
		return fmt.Sprintf("Failed to parse value [%s] as only [true] or [false] are allowed.", strings.Trim(string(v.MarshalTo(nil)), `"`))
	case kindDate:
		if t == fastjson.TypeNumber || (t == fastjson.TypeString && isDate(s)) {
			return ""
		}
		return fmt.Sprintf("failed to parse date field [%s] with format [strict_date_optional_time||epoch_millis]", strings.Trim(string(v.MarshalTo(nil)), `"`))
	case kindIP:
		if t == fastjson.TypeString {
			if _, err := netip.ParseAddr(s); err == nil {
				return ""
			}
		}
		return fmt.Sprintf("'%s' is not an IP string literal.", strings.Trim(string(v.MarshalTo(nil)), `"`))
	}
	return ""
}

func token(t fastjson.Type) string {
	switch t {
	case fastjson.TypeTrue:
		return "VALUE_TRUE"
	case fastjson.TypeFalse:
		return "VALUE_FALSE"
	case fastjson.TypeString:
		return "VALUE_STRING"
	}
	return "VALUE_NUMBER"
}

// dateLayouts approximate strict_date_optional_time, the format dynamic
// mapping detects and date fields accept by default.
var dateLayouts = []string{
	"2006-01-02",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
}

func isDate(s string) bool {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return true // the common case, tried first
	}
	for _, l := range dateLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	return false
}
