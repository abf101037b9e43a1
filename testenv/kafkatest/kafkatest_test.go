package kafkatest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

func start(t *testing.T, cfg Config) *Broker {
	t.Helper()
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func client(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := b.Client(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(ctx context.Context, cl *kgo.Client, topic string, n int) error {
	for i := range n {
		r := &kgo.Record{
			Topic:   topic,
			Key:     fmt.Appendf(nil, "k%d", i),
			Value:   fmt.Appendf(nil, "v%d", i),
			Headers: []kgo.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", i)}},
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRoundTrip(t *testing.T) {
	tlsServer, tlsClient := selfSigned(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"plaintext", Config{Topics: []string{"t"}}},
		{"sasl plain", Config{Topics: []string{"t"}, Users: []User{{Plain, "alice", "pw"}}}},
		{"sasl scram-sha-256", Config{Topics: []string{"t"}, Users: []User{{ScramSHA256, "alice", "pw"}}}},
		{"sasl scram-sha-512", Config{Topics: []string{"t"}, Users: []User{{ScramSHA512, "alice", "pw"}}}},
		{"tls", Config{Topics: []string{"t"}, TLS: tlsServer, ClientTLS: tlsClient}},
		{"auto-created topic", Config{AllowAutoTopicCreation: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			b := start(t, tt.cfg)
			cl := client(t, b, kgo.AllowAutoTopicCreation())
			if err := produce(ctx, cl, "t", 10); err != nil {
				t.Fatal(err)
			}
			if got := b.Partitions("t"); got != 3 {
				t.Errorf("partitions = %d, want the default 3", got)
			}
			if got := b.Count("t"); got != 10 {
				t.Errorf("Count = %d, want 10", got)
			}
			recs, err := b.Records(ctx, "t")
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 10 {
				t.Fatalf("got %d records, want 10", len(recs))
			}
			seen := map[string]bool{}
			for _, r := range recs {
				var i int
				if _, err := fmt.Sscanf(string(r.Key), "k%d", &i); err != nil {
					t.Fatalf("key %q: %v", r.Key, err)
				}
				if string(r.Value) != fmt.Sprintf("v%d", i) || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) {
					t.Errorf("record %q = %q %v", r.Key, r.Value, r.Headers)
				}
				seen[string(r.Key)] = true
			}
			if len(seen) != 10 {
				t.Errorf("%d distinct keys, want 10", len(seen))
			}
		})
	}
}

func TestBadSASLPassword(t *testing.T) {
	b := start(t, Config{Topics: []string{"t"}, Users: []User{{Plain, "alice", "pw"}}})
	ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
	defer cancel()
	// Not b.Client: it authenticates with the right password.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.SASL(plain.Auth{User: "alice", Pass: "wrong"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = produce(ctx, cl, "t", 1)
	if err == nil {
		t.Fatal("produce with a wrong password succeeded")
	}
	if b.Count("t") != 0 {
		t.Error("records written despite the wrong password")
	}
}

func TestFixedAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := start(t, Config{Addr: addr})
	if got := b.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("Addrs = %v, want [%s]", got, addr)
	}
	if err := b.CreateTopic("later", 5); err != nil {
		t.Fatal(err)
	}
	if got := b.Partitions("later"); got != 5 {
		t.Errorf("partitions = %d, want 5", got)
	}
	if err := b.CreateTopic("later", 5); err == nil {
		t.Error("creating an existing topic succeeded")
	}
	if _, err := b.Records(ctxT(t), "missing"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("Records of a missing topic: %v", err)
	}
	if recs, err := b.Records(ctxT(t), "later"); err != nil || len(recs) != 0 {
		t.Errorf("Records of an empty topic: %v, %v", recs, err)
	}
}

func TestFailProduce(t *testing.T) {
	tests := []struct {
		name      string
		err       *kerr.Error
		wantError bool // kgo retries retriable errors itself
	}{
		{"retriable", kerr.NotEnoughReplicas, false},
		{"not retriable", kerr.InvalidRecord, true},
		{"message too large", kerr.MessageTooLarge, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			b := start(t, Config{Topics: []string{"t"}, Partitions: 1})
			cl := client(t, b, kgo.RetryBackoffFn(func(int) time.Duration { return time.Millisecond }), kgo.MetadataMinAge(10*time.Millisecond))
			f := b.FailProduce(ProduceFault{Topic: "t", Err: tt.err})
			err := produce(ctx, cl, "t", 1)
			if got := err != nil; got != tt.wantError {
				t.Fatalf("produce error = %v, want error: %v", err, tt.wantError)
			}
			if err != nil && !errors.Is(err, tt.err) {
				t.Errorf("produce error = %v, want %v", err, tt.err)
			}
			if f.Hits() != 1 {
				t.Errorf("fault hits = %d, want 1", f.Hits())
			}
			want := int64(0)
			if !tt.wantError {
				want = 1
			}
			if got := b.Count("t"); got != want {
				t.Errorf("Count = %d, want %d", got, want)
			}
			// The fault is used up: the next produce goes through.
			if err := produce(ctx, cl, "t", 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFailProducePartitions(t *testing.T) {
	ctx := ctxT(t)
	b := start(t, Config{Topics: []string{"t"}, Partitions: 2})
	f := b.FailProduce(ProduceFault{Topic: "t", Partitions: []int32{1}, Err: kerr.InvalidRecord, Count: -1})
	defer f.Remove()
	cl := client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(2) {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: p, Value: []byte("x")}).FirstErr()
		if (err != nil) != (p == 1) {
			t.Errorf("partition %d: produce error %v", p, err)
		}
	}
	if got := b.Count("t"); got != 1 {
		t.Errorf("Count = %d, want 1 (partition 0 only)", got)
	}
}

func TestHoldProduce(t *testing.T) {
	ctx := ctxT(t)
	b := start(t, Config{Topics: []string{"t"}, Partitions: 1})
	release, held := b.HoldProduce(1)
	cl := client(t, b)
	done := make(chan error, 1)
	cl.Produce(ctx, &kgo.Record{Topic: "t", Value: []byte("x")}, func(_ *kgo.Record, err error) { done <- err })
	waitFor(t, func() bool { return held() == 1 })
	if got := b.Count("t"); got != 0 {
		t.Errorf("Count while held = %d, want 0", got)
	}
	select {
	case err := <-done:
		t.Fatalf("held produce answered: %v", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("released produce: %v", err)
	}
	// Only one request was to be held: the next one is answered at once.
	if err := produce(ctx, cl, "t", 1); err != nil {
		t.Fatal(err)
	}
	if got := b.Count("t"); got != 2 {
		t.Errorf("Count = %d, want 2", got)
	}
}

func TestDelayProduce(t *testing.T) {
	ctx := ctxT(t)
	b := start(t, Config{Topics: []string{"t"}, Partitions: 1})
	stop := b.DelayProduce(-1, 20*time.Millisecond)
	cl := client(t, b)
	if err := produce(ctx, cl, "t", 3); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := produce(ctx, cl, "t", 1); err != nil {
		t.Fatal(err)
	}
	if got := b.Count("t"); got != 4 {
		t.Errorf("Count = %d, want 4", got)
	}
}

// TestCloseReleasesEverything checks that Close, even with a request held,
// leaves no goroutine behind.
func TestCloseReleasesEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		ctx := ctxT(t)
		b, err := Start(Config{Topics: []string{"t"}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		cl, err := b.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := produce(ctx, cl, "t", 3); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Records(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		_, held := b.HoldProduce(-1)
		done := make(chan error, 1)
		cl.Produce(ctx, &kgo.Record{Topic: "t", Value: []byte("x")}, func(_ *kgo.Record, err error) { done <- err })
		waitFor(t, func() bool { return held() > 0 })
		b.Close()
		cl.Close()
		<-done
	}()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("condition not met within 10s; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// selfSigned returns a server configuration with a fresh certificate for
// 127.0.0.1 and a client configuration that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkatest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
