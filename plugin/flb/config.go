package flb

import (
	"errors"
	"fmt"
	"github.com/auditpipe/auditpipe/integrity"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/internal/yamlconf"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/transformers/external"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// DefaultRetryMaxElapsed bounds how long one flush retries an output before
// it answers FLB_RETRY: Fluent Bit owns the long retries (and keeps the
// chunk, on disk with storage.type filesystem), so a flush must not hold a
// worker for ever.
const DefaultRetryMaxElapsed = 30 * time.Second

// Config is one [OUTPUT] section of type auditpipe, read by ParseConfig.
type Config struct {
	// Format is the transformer (Format key). Default "auto".
	Format string
	// SourceName becomes event.source.name (Source_Name). Default: the
	// chunk's tag.
	SourceName string
	// PayloadKey names the record key holding the payload (Payload_Key).
	// Default empty: the whole record map is the payload.
	PayloadKey string
	// Outputs are the outputs the events go to: one built from Output and
	// its <Output>_<Key> keys, or those of the Config file.
	Outputs []fanout.OutputConfig
	// Labels are added to every event (Config file's labels).
	Labels map[string]string
	// Transformers configures the built-in formats (Alertname key; Config
	// file's redact, limits, alertmanager, app, k8s sections).
	Transformers formats.Config
	// DLQDir is the dead-letter store's directory (DLQ_Dir).
	DLQDir string
	// RetryMaxElapsed is the default max_elapsed_time of every output
	// whose retry does not set one (Retry_Max_Elapsed). Default 30s.
	RetryMaxElapsed time.Duration
	// LogLevel is debug, info, warn or error (Log_Level). Default info.
	LogLevel string
	// Integrity seals each output's deliveries (Integrity_Key_File,
	// Integrity_Sign, Integrity_Sign_Every, Integrity_Instance).
	Integrity integrity.Config
	// IntegrityStateDir holds the chains' state file
	// (Integrity_State_Dir). Default: DLQ_Dir.
	IntegrityStateDir string
	// External is the transformer plugin of Format external: the
	// sidecar's transformer section, from the External_<Key> keys or the
	// Config file's transformer section. Nil with any other Format.
	External *external.Config

	// externalFile is the Config file External came from; "" when it
	// came from the External_<Key> keys.
	externalFile string

	// keyOf maps YAML key paths (kafka.brokers) to the Fluent Bit key
	// that set them, so validation errors name what the user wrote.
	keyOf map[string]string
}

// fileConfig is the YAML file the Config key names: the sidecar's outputs,
// labels, redact, limits, dead_letter and format sections.
type fileConfig struct {
	Outputs        []fanout.OutputConfig `yaml:"outputs"`
	Labels         map[string]string     `yaml:"labels"`
	formats.Config `yaml:",inline"`
	DeadLetter     struct {
		Dir string `yaml:"dir"`
	} `yaml:"dead_letter"`
	// Transformer is read as a sidecar source's transformer section.
	Transformer *external.Config `yaml:"transformer"`
}

// keyErr is a configuration error naming the Fluent Bit key.
func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}

// ParseConfig reads an [OUTPUT] section through get, which returns a key's
// value or "" (Fluent Bit's keys are case-insensitive; get must be too).
// Every problem is reported, joined, each naming its Fluent Bit key.
func ParseConfig(get func(key string) string) (*Config, error) {
	val := func(k string) string { return strings.TrimSpace(get(k)) }
	reg := standard.Registry()
	c := &Config{
		Format:     val("Format"),
		SourceName: val("Source_Name"),
		PayloadKey: val("Payload_Key"),
		DLQDir:     val("DLQ_Dir"),
		LogLevel:   strings.ToLower(val("Log_Level")),
		keyOf:      map[string]string{},
	}
	var errs []error
	if c.Format == "" {
		c.Format = "auto"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, keyErr("Log_Level", "%q is not one of debug, info, warn, error", c.LogLevel))
	}
	c.RetryMaxElapsed = DefaultRetryMaxElapsed
	if v := val("Retry_Max_Elapsed"); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, keyErr("Retry_Max_Elapsed", "%q is not a duration (e.g. 30s, 2m)", v))
		case d <= 0:
			errs = append(errs, keyErr("Retry_Max_Elapsed", "must be positive: a flush that never gives up blocks a Fluent Bit worker"))
		default:
			c.RetryMaxElapsed = d
		}
	}
	if a := val("Alertname"); a != "" {
		c.Transformers.Alertmanager.Alertname = a
		c.keyOf["alertmanager.alertname"] = "Alertname"
	}

	file, typ := val("Config"), strings.ToLower(val("Output"))
	fileRead := false
	switch {
	case file != "" && typ != "":
		errs = append(errs, keyErr("Output", "set together with Config; use one (the Config file's outputs, or Output with its keys)"))
	case file != "":
		if err := c.loadFile(reg, file); err != nil {
			errs = append(errs, err)
		} else {
			fileRead = true
		}
		errs = append(errs, strayOutputKeys(reg, get, "")...)
	case typ == "":
		errs = append(errs, keyErr("Output", "required: one of %v, or set Config to a YAML file", reg.Types()))
	case !slices.Contains(reg.Types(), typ):
		errs = append(errs, keyErr("Output", "%q is not one of %v", typ, reg.Types()))
	default:
		oc, oerrs := c.outputFromKeys(reg, get, typ, val("Output_Name"))
		errs = append(errs, oerrs...)
		errs = append(errs, strayOutputKeys(reg, get, typ)...)
		if len(oerrs) == 0 {
			c.Outputs = []fanout.OutputConfig{oc}
		}
	}
	errs = append(errs, c.parseExternal(get, file == "" || fileRead)...)
	errs = append(errs, c.parseIntegrity(val)...)
	if c.DLQDir == "" {
		if typ == "stdout" || typ == "file" {
			// Trying the plugin out should not need a directory; real
			// deployments (kafka, elasticsearch, s3, webhook, Config)
			// must say where rejected events are kept.
			c.DLQDir = filepath.Join(os.TempDir(), "auditpipe-fluentbit-dlq")
		} else {
			errs = append(errs, keyErr("DLQ_Dir", "required with Output %s: the directory where records that cannot be delivered are kept", orStr(typ, "from Config")))
		}
	}
	if c.IntegrityStateDir == "" {
		c.IntegrityStateDir = c.DLQDir
	}
	for i := range c.Outputs {
		if c.Outputs[i].Retry.MaxElapsedTime == 0 {
			c.Outputs[i].Retry.MaxElapsedTime = c.RetryMaxElapsed
		}
	}
	if len(errs) == 0 {
		if err := fanout.Validate(reg, c.Outputs); err != nil {
			errs = append(errs, c.keyErrors(err))
		}
		if err := c.Transformers.Limits.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (c *Config) loadFile(reg *outputs.Registry, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return keyErr("Config", "%v", err)
	}
	var fc fileConfig
	// As the sidecar reads its file: ${VAR}, ${VAR:-default}, ${file:PATH}
	// and $$ expanded in values, unknown keys refused.
	doc, err := yamlconf.Parse(data, yamlconf.Lookups{})
	if err == nil {
		doc.Decode(&fc)
		fanout.DecodeSettings(reg, doc, fc.Outputs)
		err = doc.Err()
	}
	if err != nil {
		return keyErr("Config", "%s: %s", path, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(fc.Outputs) == 0 {
		return keyErr("Config", "%s: outputs: at least one required", path)
	}
	if err := fanout.Validate(reg, fc.Outputs); err != nil {
		return keyErr("Config", "%s: %v", path, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	c.Outputs = fc.Outputs
	c.Labels = fc.Labels
	c.External = fc.Transformer
	if c.External != nil {
		c.externalFile = path
	}
	a := c.Transformers.Alertmanager.Alertname
	c.Transformers = fc.Config
	if a != "" {
		c.Transformers.Alertmanager.Alertname = a
	}
	if c.DLQDir == "" {
		c.DLQDir = fc.DeadLetter.Dir
	}
	return nil
}

// keyErrors makes what fanout reports name the Fluent Bit keys the user
// wrote: an error whose key path one of them set (kafka.brokers) names
// that key instead (Kafka_Brokers), and the first entry, the one Output
// and its keys describe, is not named.
func (c *Config) keyErrors(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, c.keyErrors(e))
		}
		return errors.Join(out...)
	}
	if e, ok := err.(*fanout.EntryError); ok && e.Index == 0 {
		err = e.Err
	}
	if e, ok := err.(*keypath.Error); ok && e.Line == 0 {
		if key, ok := c.keyOf[e.Path]; ok {
			return keyErr(key, "%v", e.Err)
		}
	}
	return err
}

// outKey is one <Output>_<Key> setting: the Fluent Bit key, its aliases,
// the YAML path under the output's section and the Go type it decodes to.
type outKey struct {
	key     string
	aliases []string
	path    []string
	typ     reflect.Type
}

var durationType = reflect.TypeFor[time.Duration]()

// OutputKeys lists the <Output>_<Key> keys of one of the shipped output
// types, derived from the yaml tags of its factory's Config so that the
// plugin and the sidecar never drift.
func OutputKeys(typ string) []string {
	var out []string
	for _, k := range outputKeys(standard.Registry(), typ) {
		out = append(out, k.key)
	}
	return out
}

func outputKeys(reg *outputs.Registry, typ string) []outKey {
	f, ok := reg.Factory(typ)
	if !ok {
		return nil
	}
	def := f.DefaultConfig()
	if def == nil {
		return nil
	}
	var keys []outKey
	walkKeys(reflect.TypeOf(def).Elem(), []string{typ}, &keys)
	return keys
}

func walkKeys(t reflect.Type, path []string, keys *[]outKey) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		p := append(slices.Clone(path), name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			walkKeys(ft, p, keys)
			continue
		}
		k := outKey{key: flbKey(p), path: p[1:], typ: ft}
		if ft.Kind() == reflect.Slice && strings.HasSuffix(name, "s") {
			// Elasticsearch_URL for elasticsearch.urls: one value is the
			// common case.
			sing := slices.Clone(p)
			sing[len(sing)-1] = strings.TrimSuffix(name, "s")
			k.aliases = []string{flbKey(sing)}
		}
		*keys = append(*keys, k)
	}
}

var acronyms = map[string]string{"url": "URL", "urls": "URLs", "api": "API", "id": "ID", "tls": "TLS", "ca": "CA",
	"sasl": "SASL", "sse": "SSE", "kms": "KMS", "ttl": "TTL", "s3": "S3", "mtls": "MTLS"}

// flbKey spells a YAML path as a Fluent Bit key: kafka.client_id ->
// Kafka_Client_ID.
func flbKey(path []string) string {
	var words []string
	for _, p := range path {
		words = append(words, strings.Split(p, "_")...)
	}
	for i, w := range words {
		if a, ok := acronyms[w]; ok {
			words[i] = a
		} else if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, "_")
}

// outputFromKeys builds the output entry from Output and its keys.
func (c *Config) outputFromKeys(reg *outputs.Registry, get func(string) string, typ, name string) (fanout.OutputConfig, []error) {
	if name == "" {
		name = typ
	}
	c.keyOf["name"] = "Output_Name"
	c.keyOf["type"] = "Output"
	c.keyOf["retry.max_elapsed_time"] = "Retry_Max_Elapsed"
	oc := fanout.OutputConfig{Name: name, Type: typ}
	f, _ := reg.Factory(typ)
	if settings := f.DefaultConfig(); settings != nil {
		section, _, errs := c.keysSection(get, typ, outputKeys(reg, typ))
		if len(errs) > 0 {
			return oc, errs
		}
		if err := section.Decode(settings); err != nil {
			return oc, []error{keyErr("Output", "%v", err)}
		}
		oc.Settings = settings
	}
	return oc, nil
}

// keysSection builds the YAML section under prefix (kafka, external) that
// the Fluent Bit keys of keys set, and notes in keyOf which key set each
// path, so that errors name what the user wrote. set lists the keys that
// were.
func (c *Config) keysSection(get func(string) string, prefix string, keys []outKey) (section *yaml.Node, set []string, errs []error) {
	section = &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		path := strings.Join(append([]string{prefix}, k.path...), ".")
		c.keyOf[path] = k.key
		used, v := k.key, strings.TrimSpace(get(k.key))
		for _, a := range k.aliases {
			if v != "" {
				break
			}
			used, v = a, strings.TrimSpace(get(a))
		}
		if v == "" {
			continue
		}
		set = append(set, used)
		c.keyOf[path] = used
		n := valueNode(k.typ, v)
		// Decoding each value alone names the key on a type error;
		// yaml.v3's own message would only give a line number.
		if err := n.Decode(reflect.New(k.typ).Interface()); err != nil {
			errs = append(errs, keyErr(used, "%q is not a valid %s", v, typeName(k.typ)))
			continue
		}
		setPath(section, k.path, n)
	}
	// Parent paths (kafka.tls: ...) name the key family (Kafka_TLS_*).
	for p := range c.keyOf {
		for parent := p; strings.Count(parent, ".") > 1; {
			parent = parent[:strings.LastIndex(parent, ".")]
			if _, ok := c.keyOf[parent]; !ok {
				c.keyOf[parent] = flbKey(strings.Split(parent, ".")) + "_*"
			}
		}
	}
	return section, set, errs
}

// strayOutputKeys reports keys of outputs other than typ: a typo in Output
// would otherwise silently ignore them.
func strayOutputKeys(reg *outputs.Registry, get func(string) string, typ string) []error {
	var errs []error
	for _, t := range reg.Types() {
		if t == typ {
			continue
		}
		for _, k := range outputKeys(reg, t) {
			for _, name := range append([]string{k.key}, k.aliases...) {
				if get(name) != "" {
					if typ == "" {
						errs = append(errs, keyErr(name, "set, but the outputs come from Config"))
					} else {
						errs = append(errs, keyErr(name, "set, but Output is %s", typ))
					}
				}
			}
		}
	}
	return errs
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration (e.g. 10s)"
	case t.Kind() == reflect.Bool:
		return "boolean (true or false)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "number"
	case t.Kind() == reflect.Map:
		return "list of name=value pairs"
	}
	return t.String()
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func strScalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

// valueNode turns a Fluent Bit value into the YAML node for type t: lists
// and maps are comma-separated (a=1,b=2 for maps).
func valueNode(t reflect.Type, v string) *yaml.Node {
	switch t.Kind() {
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				n.Content = append(n.Content, strScalar(e))
			}
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, e := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(e), "=")
			if !ok {
				// Left for Decode to reject with the key's name.
				return scalar(v)
			}
			n.Content = append(n.Content, strScalar(strings.TrimSpace(k)), strScalar(strings.TrimSpace(val)))
		}
		return n
	case reflect.String:
		return strScalar(v)
	}
	return scalar(v)
}

func setPath(m *yaml.Node, path []string, v *yaml.Node) {
	for len(path) > 1 {
		var next *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == path[0] {
				next = m.Content[i+1]
			}
		}
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode}
			m.Content = append(m.Content, scalar(path[0]), next)
		}
		m, path = next, path[1:]
	}
	m.Content = append(m.Content, scalar(path[0]), v)
}

// ExternalKeys lists the External_<Key> keys of Format external. They are
// derived, as the outputs' keys are, from the yaml tags of
// external.Config, which is also a sidecar source's transformer section,
// so that the plugin and the sidecar never drift.
func ExternalKeys() []string {
	var out []string
	for _, k := range externalKeys() {
		out = append(out, k.key)
	}
	return out
}

func externalKeys() []outKey {
	var keys []outKey
	walkKeys(reflect.TypeFor[external.Config](), []string{"external"}, &keys)
	return keys
}

// parseExternal reads the transformer of Format external from the
// External_<Key> keys or, already in c.External, the Config file's
// transformer section: one of the two, with Format external only.
// fileRead is false when a Config file was named but could not be read
// (whatever it holds is unknown, so its absence is not reported).
func (c *Config) parseExternal(get func(string) string, fileRead bool) []error {
	section, set, errs := c.keysSection(get, "external", externalKeys())
	if len(errs) > 0 {
		return errs
	}
	if c.Format != external.Format {
		for _, k := range set {
			errs = append(errs, keyErr(k, "set, but Format is %s (the External_* keys configure Format external)", c.Format))
		}
		if c.External != nil {
			errs = append(errs, keyErr("Config", "%s: transformer: set, but Format is %s (it configures Format external)", c.externalFile, c.Format))
			c.External = nil
		}
		return errs
	}
	switch {
	case len(set) > 0 && c.External != nil:
		return []error{keyErr(set[0], "set together with the transformer section of Config %s; use one", c.externalFile)}
	case len(set) > 0:
		c.External = &external.Config{}
		if err := section.Decode(c.External); err != nil {
			return []error{keyErr(set[0], "%v", err)}
		}
	case c.External == nil && fileRead:
		return []error{keyErr("External_Path", "required with Format external: the transformer plugin's executable (or a transformer section in the Config file)")}
	case c.External == nil:
		return nil
	}
	if err := c.External.Validate(); err != nil {
		return []error{c.externalErr(err)}
	}
	return nil
}

// externalErr names the key behind an error of the external
// transformer's configuration or start ("path: ...", "checksum: ..."):
// the External_<Key> key the user set, or the Config file's transformer
// section. An error that names no key is the plugin failing to start,
// which its path stands for.
func (c *Config) externalErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "external transformer: ")
	k, rest, ok := strings.Cut(msg, ": ")
	if !ok || !slices.ContainsFunc(externalKeys(), func(o outKey) bool { return o.path[0] == k }) {
		k, rest = "path", msg
	}
	if c.externalFile != "" {
		return keyErr("Config", "%s: transformer.%s: %s", c.externalFile, k, rest)
	}
	key := c.keyOf["external."+k]
	if key == "" {
		key = flbKey([]string{"external", k})
	}
	return keyErr(key, "%s", rest)
}

// parseIntegrity reads the Integrity_* keys.
func (c *Config) parseIntegrity(val func(string) string) []error {
	c.Integrity = integrity.Config{SigningKeyFile: val("Integrity_Key_File"), Sign: integrity.Mode(strings.ToLower(val("Integrity_Sign"))),
		Instance: val("Integrity_Instance")}
	c.IntegrityStateDir = val("Integrity_State_Dir")
	var errs []error
	if v := val("Integrity_Sign_Every"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, keyErr("Integrity_Sign_Every", "%q is not a number", v))
		}
		c.Integrity.SignEvery = n
	}
	keys := map[string]string{"sign": "Integrity_Sign", "sign_every": "Integrity_Sign_Every", "instance": "Integrity_Instance",
		"signing_key_file": "Integrity_Key_File"}
	if err := c.Integrity.Validate(); err != nil {
		for _, e := range unjoin(err) {
			k, msg, _ := strings.Cut(e.Error(), ": ")
			errs = append(errs, keyErr(keys[k], "%s", msg))
		}
	}
	return errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
