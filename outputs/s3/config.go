package s3

import (
	"net/url"
	"time"

	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// Defaults of the Config fields.
const (
	DefaultMaxObjectBytes = 64 << 20
	DefaultTimeout        = 30 * time.Second
)

// Compression values.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Config is the s3 output's configuration, under the output's `s3` key.
type Config struct {
	// Bucket receives the objects. Required.
	Bucket string `yaml:"bucket"`
	// Region is the bucket's region. Default: the AWS chain's (AWS_REGION,
	// the profile's region); with an endpoint and no region anywhere,
	// us-east-1, which S3-compatible stores accept.
	Region string `yaml:"region"`
	// Prefix starts every key. It is an outputs.Template, so
	// "audit/{source_name}" or "{label:cluster}" work. Slashes at either
	// end are dropped. Default "" (keys start at source=).
	Prefix string `yaml:"prefix"`
	// Endpoint is the base URL of an S3-compatible store
	// (https://minio.example:9000). Default: AWS's endpoint for the region.
	Endpoint string `yaml:"endpoint"`
	// ForcePathStyle addresses the bucket in the path
	// (https://host/bucket/key) rather than the host name, as most
	// S3-compatible stores need. Default false.
	ForcePathStyle bool `yaml:"force_path_style"`
	// AccessKeyID, SecretAccessKey and SessionToken are static
	// credentials. Default: none, and the AWS default chain is used:
	// environment, shared config and credentials files (Profile), web
	// identity (IRSA on EKS), ECS and EC2 instance roles.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// Profile selects a profile of the shared AWS config files. Default:
	// AWS_PROFILE, else "default".
	Profile string `yaml:"profile"`
	// Compression is "gzip" (default) or "none".
	Compression string `yaml:"compression"`
	// MaxObjectBytes caps an object's uncompressed size; a larger group of
	// events is split into several objects. An event larger than the cap
	// gets an object of its own. Default 64 MiB.
	MaxObjectBytes int64 `yaml:"max_object_bytes"`
	// SSE is the server-side encryption S3 applies: "none" (default: the
	// bucket's default encryption applies), "AES256" (SSE-S3) or
	// "aws:kms" (SSE-KMS).
	SSE string `yaml:"sse"`
	// SSEKMSKeyID is the KMS key for "aws:kms". Default: the account's
	// aws/s3 key.
	SSEKMSKeyID string `yaml:"sse_kms_key_id"`
	// ObjectLockMode is "GOVERNANCE" or "COMPLIANCE" to write every object
	// under Object Lock retention (the bucket must have Object Lock
	// enabled). Default: none.
	ObjectLockMode string `yaml:"object_lock_mode"`
	// ObjectLockRetainDays is the retention: each object is locked until
	// its upload time plus this many days. Required with
	// ObjectLockMode, which is required with it.
	ObjectLockRetainDays int `yaml:"object_lock_retain_days"`
	// ObjectLockLegalHold puts every object under an Object Lock legal
	// hold (x-amz-object-lock-legal-hold: ON), as Teabar's audit archive
	// does: the object cannot be deleted or overwritten, whatever its
	// retention, until someone with s3:PutObjectLegalHold lifts the hold.
	// It works with or without object_lock_mode (the bucket must have
	// Object Lock enabled). Default false.
	ObjectLockLegalHold bool `yaml:"object_lock_legal_hold"`
	// StorageClass is the objects' storage class (STANDARD_IA,
	// GLACIER_IR, ...). Default: STANDARD, as S3 decides.
	StorageClass string `yaml:"storage_class"`
	// TLS configures the HTTPS client: a private CA for an in-house
	// store, a client certificate. Default: the system's roots, or the
	// bundle in AWS_CA_BUNDLE or the profile's ca_bundle, which are added
	// to TLS.CAFile's when both are set.
	TLS outputs.TLSConfig `yaml:"tls"`
	// Timeout bounds each PutObject, connection included. Default 30s.
	// The Deliverer's retry.attempt_timeout bounds the whole Write.
	Timeout time.Duration `yaml:"timeout"`
}

// withDefaults returns c with the defaults that need no AWS lookup applied.
func (c Config) withDefaults() Config {
	if c.Compression == "" {
		c.Compression = CompressionGzip
	}
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if c.SSE == "" {
		c.SSE = "none"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate reports the first invalid field by its YAML key. It reads no
// files and makes no requests.
func (c Config) Validate() error {
	switch {
	case c.Bucket == "":
		return keypath.Errorf("bucket", "required")
	case c.Compression != "" && c.Compression != CompressionGzip && c.Compression != CompressionNone:
		return keypath.Errorf("compression", "%q is not gzip or none", c.Compression)
	case c.MaxObjectBytes < 0:
		return keypath.Errorf("max_object_bytes", "must not be negative")
	case c.Timeout < 0:
		return keypath.Errorf("timeout", "must not be negative")
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		return keypath.Errorf("access_key_id and secret_access_key", "set both or neither")
	case c.SessionToken != "" && c.AccessKeyID == "":
		return keypath.Errorf("session_token", "needs access_key_id and secret_access_key")
	case c.Profile != "" && c.AccessKeyID != "":
		return keypath.Errorf("profile", "not with access_key_id (static credentials would win silently)")
	}
	if _, err := outputs.ParseTemplate(c.Prefix); err != nil {
		return keypath.Errorf("prefix", "%w", err)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil {
			return keypath.Errorf("endpoint", "%w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return keypath.Errorf("endpoint", "%q is not an http:// or https:// URL", c.Endpoint)
		}
	}
	switch c.SSE {
	case "", "none", "AES256":
		if c.SSEKMSKeyID != "" {
			return keypath.Errorf("sse_kms_key_id", "needs sse: aws:kms")
		}
	case "aws:kms":
	default:
		return keypath.Errorf("sse", "%q is not none, AES256 or aws:kms", c.SSE)
	}
	switch c.ObjectLockMode {
	case "":
		if c.ObjectLockRetainDays != 0 {
			return keypath.Errorf("object_lock_retain_days", "needs object_lock_mode")
		}
	case "GOVERNANCE", "COMPLIANCE":
		if c.ObjectLockRetainDays <= 0 {
			return keypath.Errorf("object_lock_retain_days", "must be at least 1 with object_lock_mode")
		}
	default:
		return keypath.Errorf("object_lock_mode", "%q is not GOVERNANCE or COMPLIANCE", c.ObjectLockMode)
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	return nil
}
