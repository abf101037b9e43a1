package s3

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5" //nolint:gosec // Content-MD5 is S3's integrity header, not a security measure
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
)

// ContentType is every object's Content-Type.
const ContentType = "application/x-ndjson"

// maxParallel bounds the objects of one Write uploaded at once. A batch
// spans a few sources and hours, so a handful of uploads in flight hides
// the round trips without opening a connection per object.
const maxParallel = 4

// metaMD5 is the user metadata key (x-amz-meta-auditpipe-md5) holding the
// body's MD5 under Object Lock, where a retried upload cannot overwrite
// the locked object and must instead recognise it as its own.
const metaMD5 = "auditpipe-md5"

// Output writes events to S3. It implements outputs.Output.
type Output struct {
	bucket string
	client *s3.Client
	httpc  *http.Client
	log    *slog.Logger
	enc    *encoder

	timeout      time.Duration
	sse          types.ServerSideEncryption
	kmsKey       *string
	storageClass types.StorageClass
	lockMode     types.ObjectLockMode
	lockDays     int
	legalHold    bool
	now          func() time.Time

	closed atomic.Bool
}

var _ outputs.Output = (*Output)(nil)

// New validates cfg, applies its defaults and builds the S3 client. It
// makes no request: a store that is down or a bucket that does not exist
// yet shows in Write, as a retryable error, so the process can start
// before its destination is ready.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	prefix, err := outputs.ParseTemplate(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("prefix: %w", err)
	}
	tlsClient, err := cfg.TLS.Client(logger)
	if err != nil {
		return nil, err
	}
	if cfg.TLS.InsecureSkipVerify {
		logger.Warn("s3: tls.insecure_skip_verify is set: the store's certificate is not checked")
	}

	// The SDK adds AWS_CA_BUNDLE (or the profile's ca_bundle) to the
	// HTTP client only when the client is its own BuildableClient; any
	// other client makes LoadDefaultConfig fail. So the TLS settings go
	// into a BuildableClient, the SDK adds the bundle, and the finished
	// transport is taken back out below to serve S3 from a client this
	// output owns and can close.
	buildable := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if c := tlsClient.Config(); c != nil {
			if c.RootCAs != nil {
				// The SDK adds its bundle to this pool: a copy, so that
				// tlsClient's own stays as the file says.
				c.RootCAs = c.RootCAs.Clone()
			}
			tr.TLSClientConfig = c
		}
	})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(buildable),
		config.WithLogger(sdkLogger{logger}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, errors.New("region: required (or set AWS_REGION, or a region in the AWS profile)")
		}
		awsCfg.Region = "us-east-1"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if b, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = b.GetTransport()
	}
	var rt http.RoundTripper = tr
	if c := tlsClient.Config(); c != nil && tr.TLSClientConfig != nil && tr.TLSClientConfig.RootCAs.Equal(c.RootCAs) {
		// The SDK added no CA bundle: tls.ca_file is re-read when it
		// changes. With AWS_CA_BUNDLE, the pool made at start stays, as
		// the SDK would not add the bundle to the next one.
		rt = tlsClient.Transport(tr)
	}
	httpc := &http.Client{
		Transport: rt,
		// S3 answers a wrong region with a redirect the SDK must see as
		// an error, not follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.HTTPClient = httpc
		o.UsePathStyle = cfg.ForcePathStyle
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		// One attempt per Write: the Deliverer owns retries, so that
		// back-off, Retry-After and dead-lettering work the same for
		// every output and a timeout means one attempt, not three.
		o.Retryer = aws.NopRetryer{}
	})

	o := &Output{
		bucket: cfg.Bucket,
		client: client,
		httpc:  httpc,
		log:    logger,
		enc: &encoder{
			prefix:   prefix,
			gzip:     cfg.Compression == CompressionGzip,
			maxBytes: int(min(cfg.MaxObjectBytes, int64(^uint(0)>>1))),
		},
		timeout:      cfg.Timeout,
		storageClass: types.StorageClass(cfg.StorageClass),
		lockMode:     types.ObjectLockMode(cfg.ObjectLockMode),
		lockDays:     cfg.ObjectLockRetainDays,
		legalHold:    cfg.ObjectLockLegalHold,
		now:          time.Now,
	}
	switch cfg.SSE {
	case "AES256":
		o.sse = types.ServerSideEncryptionAes256
	case "aws:kms":
		o.sse = types.ServerSideEncryptionAwsKms
		if cfg.SSEKMSKeyID != "" {
			o.kmsKey = aws.String(cfg.SSEKMSKeyID)
		}
	}
	return o, nil
}

// sdkLogger sends the SDK's own log lines (warnings about checksums,
// clock skew) to slog instead of stderr.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "s3: aws sdk: "+fmt.Sprintf(format, v...))
}

// Write uploads the events as one object per group of events with the same
// prefix, source type, UTC date and hour (more when a group exceeds
// max_object_bytes), and returns once every upload has finished. A failed
// upload fails exactly the events of its object.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if o.closed.Load() {
		return errors.New("s3: write after Close")
	}
	if len(events) == 0 {
		return nil
	}
	groups := o.enc.groups(events)
	var (
		mu      sync.Mutex
		results []result
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	work := func() {
		for {
			g := int(next.Add(1) - 1)
			if g >= len(groups) {
				return
			}
			for _, obj := range o.enc.encodeGroup(events, &groups[g]) {
				k, err := o.upload(ctx, &obj)
				mu.Lock()
				results = append(results, result{idx: obj.idx, kind: k, err: err})
				mu.Unlock()
			}
		}
	}
	if workers := min(len(groups), maxParallel); workers == 1 {
		work()
	} else {
		for range workers {
			wg.Go(work)
		}
		wg.Wait()
	}
	o.logFailures(results)
	return summarize(results)
}

type result struct {
	idx  []int
	kind kind
	err  error
}

// summarize turns the objects' results into Write's answer: nil, one
// error for the whole batch when every object failed alike (the store is
// down, the credentials are wrong: the Deliverer reports that as health),
// or a PartialError naming the events of the objects that failed.
func summarize(results []result) error {
	var failed []result
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if len(failed) == len(results) {
		perm := outputs.IsPermanent(failed[0].err)
		same := true
		decisive := failed[0].err
		longest, _ := outputs.RetryAfterOf(decisive)
		for _, r := range failed[1:] {
			if outputs.IsPermanent(r.err) != perm {
				same = false
				break
			}
			if ra, _ := outputs.RetryAfterOf(r.err); ra > longest {
				decisive, longest = r.err, ra
			}
		}
		if same {
			if len(results) == 1 {
				return decisive
			}
			return fmt.Errorf("all %d objects failed: %w", len(results), decisive)
		}
	}
	pe := &outputs.PartialError{}
	for _, r := range failed {
		for _, i := range r.idx {
			pe.Failures = append(pe.Failures, outputs.Failure{Index: i, Err: r.err})
		}
	}
	// Uploads finish in any order; the report should not.
	slices.SortFunc(pe.Failures, func(a, b outputs.Failure) int { return cmp.Compare(a.Index, b.Index) })
	return pe
}

// upload makes one PutObject of obj and classifies its failure.
func (o *Output) upload(ctx context.Context, obj *object) (kind, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	in := &s3.PutObjectInput{
		Bucket:        aws.String(o.bucket),
		Key:           aws.String(obj.key),
		Body:          bytes.NewReader(obj.body), // seekable: the SDK's checksum rewinds it
		ContentLength: aws.Int64(int64(len(obj.body))),
		ContentType:   aws.String(ContentType),
	}
	if o.enc.gzip {
		in.ContentEncoding = aws.String("gzip")
	}
	in.ServerSideEncryption = o.sse
	in.SSEKMSKeyId = o.kmsKey
	in.StorageClass = o.storageClass
	var sum string
	if o.lockMode != "" || o.legalHold {
		h := md5.Sum(obj.body) //nolint:gosec // see the import
		// S3 refuses an Object Lock upload without Content-MD5 or a
		// checksum; the SDK's CRC32 would do, but not behind every proxy
		// and S3-compatible store, while Content-MD5 works everywhere.
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(h[:]))
		sum = hex.EncodeToString(h[:])
		in.Metadata = map[string]string{metaMD5: sum}
		if o.lockMode != "" {
			in.ObjectLockMode = o.lockMode
			in.ObjectLockRetainUntilDate = aws.Time(o.now().Add(time.Duration(o.lockDays) * 24 * time.Hour).UTC())
		}
		if o.legalHold {
			in.ObjectLockLegalHoldStatus = types.ObjectLockLegalHoldStatusOn
		}
	}
	_, err := o.client.PutObject(ctx, in)
	if err == nil {
		o.log.Debug("s3: object uploaded", "key", obj.key, "events", len(obj.idx), "bytes", len(obj.body), "raw_bytes", obj.raw)
		return kindRetryable, nil
	}
	if sum != "" && lockConflict(err) && o.alreadyThere(ctx, obj.key, sum) {
		// A retry of an upload whose answer was lost: the locked object
		// cannot be overwritten (in a bucket without versioning), but it
		// holds exactly these bytes, so the events are delivered.
		o.log.Debug("s3: locked object already holds this upload", "key", obj.key)
		return kindRetryable, nil
	}
	return o.classify(obj, err)
}

// lockConflict reports whether err may be the store refusing to overwrite
// a locked object: a 403 (S3, versitygw) or a 409 (some S3-compatible
// stores), not a network error, after which a HEAD would fail too.
func lockConflict(err error) bool {
	var resp *awshttp.ResponseError
	if !errors.As(err, &resp) {
		return false
	}
	s := resp.HTTPStatusCode()
	return s == http.StatusForbidden || s == http.StatusConflict
}

// alreadyThere reports whether key exists with the MD5 this output
// recorded for the same body.
func (o *Output) alreadyThere(ctx context.Context, key, sum string) bool {
	if ctx.Err() != nil {
		return false
	}
	h, err := o.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(key)})
	return err == nil && h.Metadata[metaMD5] == sum
}

// Close releases the HTTP connections. Write must not be called after it.
func (o *Output) Close(context.Context) error {
	o.closed.Store(true)
	o.httpc.CloseIdleConnections()
	return nil
}
