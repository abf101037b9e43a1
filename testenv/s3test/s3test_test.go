package s3test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestServer(t *testing.T) {
	Require(t)
	for _, tc := range []struct {
		name string
		tls  bool
	}{
		{"http", false},
		{"tls", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			srv, err := Start(ctx, Config{TLS: tc.tls})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if want := map[bool]string{false: "http://127.0.0.1:", true: "https://127.0.0.1:"}[tc.tls]; !strings.HasPrefix(srv.Endpoint(), want) {
				t.Errorf("Endpoint() = %q, want prefix %q", srv.Endpoint(), want)
			}
			if (srv.CAFile() != "") != tc.tls {
				t.Errorf("CAFile() = %q with TLS %v", srv.CAFile(), tc.tls)
			}
			if err := srv.CreateBucket(ctx, "plain"); err != nil {
				t.Fatal(err)
			}
			body := []byte("hello\nworld\n")
			// The SDK's default CRC32 checksum: a header over HTTP, an
			// aws-chunked trailer over TLS. Either way the stored bytes
			// must be the body alone.
			_, err = srv.Client().PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("plain"), Key: aws.String("a/b/c.txt"), Body: bytes.NewReader(body),
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := srv.GetObject(ctx, "plain", "a/b/c.txt")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("object = %q, want %q", got, body)
			}
			keys, err := srv.ListKeys(ctx, "plain", "a/")
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0] != "a/b/c.txt" {
				t.Errorf("ListKeys = %q", keys)
			}

			if err := srv.CreateBucket(ctx, "locked", WithObjectLock()); err != nil {
				t.Fatal(err)
			}
			until := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
			_, err = srv.Client().PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("locked"), Key: aws.String("x"), Body: bytes.NewReader(body),
				ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until),
			})
			if err != nil {
				t.Fatal(err)
			}
			ret, err := srv.Client().GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String("locked"), Key: aws.String("x")})
			if err != nil {
				t.Fatal(err)
			}
			if ret.Retention.Mode != types.ObjectLockRetentionModeGovernance || !aws.ToTime(ret.Retention.RetainUntilDate).Equal(until) {
				t.Errorf("retention = %s until %v, want GOVERNANCE until %v", ret.Retention.Mode, aws.ToTime(ret.Retention.RetainUntilDate), until)
			}

			pid := srv.cmd.Process.Pid
			dir := srv.Dir()
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			// Close waited for the process, so its pid is gone (not a
			// zombie, which signal 0 would still reach).
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("versitygw pid %d still exists after Close: %v", pid, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary dir %s left behind: %v", dir, err)
			}
		})
	}
}

func TestFixedAddrAndOwnDir(t *testing.T) {
	Require(t)
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := Start(t.Context(), Config{Addr: addr, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr || srv.Endpoint() != "http://"+addr {
		t.Errorf("Addr() = %q, Endpoint() = %q, want %s", srv.Addr(), srv.Endpoint(), addr)
	}
	if err := srv.CreateBucket(t.Context(), "bkt"); err != nil {
		t.Fatal(err)
	}
	// A second server cannot take the same fixed port: Start must report
	// it rather than hang.
	if s2, err := Start(t.Context(), Config{Addr: addr, Dir: t.TempDir()}); err == nil {
		s2.Close()
		t.Error("second Start on a busy port succeeded")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir + "/bkt"); err != nil || !fi.IsDir() {
		t.Errorf("bucket directory in a caller's Dir should stay after Close: %v", err)
	}
}

func TestBinaryFromEnv(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/versitygw")
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), EnvBinary) {
		t.Errorf("Binary() with a bad %s: err = %v, want one naming the variable", EnvBinary, err)
	}
	if _, err := Start(context.Background(), Config{}); err == nil {
		t.Error("Start with a bad binary succeeded")
	}
}
