package s3

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ReadBack calls fn once per stored unit (object, file, partition, index)
// with a reader of the NDJSON event lines it holds, in the order the
// output wrote them.
//
// For S3 the units are the objects under the bucket and the output's key
// prefix, in key order (UTF-8 binary, as ListObjectsV2 returns them), each
// body streamed as stored: gzip or not, which the reader detects. source
// is "s3://bucket/key". When the prefix is a template, only its text
// before the first placeholder is certain, so everything under that is
// read: a prefix that starts with a placeholder reads the whole bucket.
// Objects under the prefix that this output did not write are read too
// (and fail verification): give an output a prefix of its own. Within an
// object the lines are in the order they were written; across objects,
// key order is not write order (keys group by source and hour), which a
// verifier does not need.
func (o *Output) ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error {
	return o.readBack(ctx, 0, fn)
}

// readBack is ReadBack listing pageSize keys a request (0: the store's
// default, 1000 for S3).
func (o *Output) readBack(ctx context.Context, pageSize int32, fn func(source string, r io.Reader) error) error {
	prefix := readBackPrefix(o.enc.prefix.String())
	in := &s3.ListObjectsV2Input{Bucket: aws.String(o.bucket), Prefix: aws.String(prefix)}
	if pageSize > 0 {
		in.MaxKeys = aws.Int32(pageSize)
	}
	pages := s3.NewListObjectsV2Paginator(o.client, in)
	for pages.HasMorePages() {
		page, err := o.listPage(ctx, pages)
		if err != nil {
			return fmt.Errorf("s3: read back: list s3://%s/%s: %w", o.bucket, prefix, err)
		}
		for _, obj := range page.Contents {
			if err := o.readObject(ctx, aws.ToString(obj.Key), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// listPage gets one page of the listing within the output's timeout.
func (o *Output) listPage(ctx context.Context, pages *s3.ListObjectsV2Paginator) (*s3.ListObjectsV2Output, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return pages.NextPage(ctx)
}

// readObject streams one object's body to fn. Only ctx bounds it: a large
// object may take longer than the output's per-request timeout.
func (o *Output) readObject(ctx context.Context, key string, fn func(string, io.Reader) error) error {
	source := "s3://" + o.bucket + "/" + key
	res, err := o.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("s3: read back: get %s: %w", source, err)
	}
	defer func() { _ = res.Body.Close() }()
	return fn(source, res.Body)
}

// readBackPrefix returns the key prefix that every object written with
// the prefix template raw starts with. Keys are the rendered prefix,
// cleaned (cleanPath), then "/source=...", or "source=..." alone when
// it renders empty.
func readBackPrefix(raw string) string {
	static, _, templated := strings.Cut(raw, "{")
	if !templated {
		b := []byte(static)
		if b = b[:cleanPath(b)]; len(b) == 0 {
			return "source="
		}
		return string(b) + "/"
	}
	// Placeholders may render as anything, nothing included, so only the
	// segments that end before the first one are known as they will be
	// cleaned; the segment it starts in is kept only when cleaning could
	// not change it whatever follows.
	dir, partial := "", static
	if i := strings.LastIndexByte(static, '/'); i >= 0 {
		dir, partial = static[:i+1], static[i+1:]
	}
	b := []byte(dir)
	out := string(b[:cleanPath(b)])
	if out != "" {
		out += "/"
	}
	if partial == "." || partial == ".." {
		return out
	}
	p := []byte(partial)
	if string(p[:cleanPath(p)]) == partial {
		out += partial
	}
	return out
}
