package elasticsearch

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// The read-back cases run against the emulation and, with
// AUDITPIPE_ES_URL set, against a real cluster, as the suite does.
func readBackPeers(t *testing.T, run func(t *testing.T, p *peer)) {
	t.Run("Emulated", func(t *testing.T) { run(t, emulatedPeer(t)) })
	t.Run("RealCluster", func(t *testing.T) {
		if os.Getenv("AUDITPIPE_ES_URL") == "" {
			t.Skip("set AUDITPIPE_ES_URL to run against a real cluster")
		}
		run(t, realPeer(t))
	})
}

// pagedReadBack reads 7 documents a search, so that a test's few dozen
// take several pages and page boundaries fall inside indices.
type pagedReadBack struct{ o *Output }

func (p pagedReadBack) ReadBack(ctx context.Context, fn func(string, io.Reader) error) error {
	return p.o.readBack(ctx, 7, fn)
}

// writeSealedES writes 40 sealed events in batches of 5 with cfg and
// makes them searchable.
func writeSealedES(t *testing.T, p *peer, cfg Config) (*Output, []auditpipe.Event, ed25519.PublicKey) {
	t.Helper()
	out := newOutput(t, cfg)
	batches, pub := outputstest.Sealed(t, "es/test", 40, 5)
	var all []auditpipe.Event
	for _, b := range batches {
		if err := out.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	p.refresh(t)
	return out, all, pub
}

func (p *peer) refresh(t *testing.T) {
	t.Helper()
	status, b := p.do(t, esapi.IndicesRefreshRequest{Index: []string{p.prefix + "*", p.dataStream()}, IgnoreUnavailable: ptr(true)})
	if status != http.StatusOK {
		t.Fatalf("refresh: HTTP %d %s", status, b)
	}
}

func ptr[T any](v T) *T { return &v }

// bulkAs applies one bulk action to a stored document, as someone with
// write access to the cluster could.
func (p *peer) bulkAs(t *testing.T, action, index, id string, doc []byte) {
	t.Helper()
	body := fmt.Sprintf("{%q:{\"_index\":%q,\"_id\":%q}}\n", action, index, id)
	if doc != nil {
		body += string(doc) + "\n"
	}
	status, b := p.do(t, esapi.BulkRequest{Body: strings.NewReader(body)})
	if status != http.StatusOK || strings.Contains(string(b), `"errors":true`) {
		t.Fatalf("bulk %s %s/%s: HTTP %d %s", action, index, id, status, b)
	}
	p.refresh(t)
}

func checkPITsClosed(t *testing.T, p *peer) {
	t.Helper()
	if p.emu != nil && p.emu.PointsInTime() != 0 {
		t.Errorf("%d points in time left open", p.emu.PointsInTime())
	}
}

func TestReadBackVerifies(t *testing.T) {
	readBackPeers(t, func(t *testing.T, p *peer) {
		cfg := p.config()
		out, evs, pub := writeSealedES(t, p, cfg)
		indices := indicesOf(t, cfg.Index, evs)
		defer p.cleanup(t, indices)
		// A stranger's index outside the pattern is not read.
		p.bulkAs(t, "create", "other-"+p.prefix, "x", []byte(`{"hello":"world"}`))
		defer p.cleanup(t, []string{"other-" + p.prefix})

		rep, sources := outputstest.VerifyReadBack(t, context.Background(), pagedReadBack{out}, pub)
		if !rep.OK || rep.Verified != len(evs) || rep.Entries != len(evs) {
			j, _ := json.Marshal(rep)
			t.Fatalf("report: ok %v, %d verified of %d entries, want all %d: %s", rep.OK, rep.Verified, rep.Entries, len(evs), j)
		}
		want := make([]string, len(indices))
		for i, ix := range indices {
			want[i] = "es://" + ix
		}
		if !slices.Equal(sources, want) {
			t.Errorf("sources %q, want each index once, in order: %q", sources, want)
		}
		checkPITsClosed(t, p)

		// With the default page size too.
		if rep, _ := outputstest.VerifyReadBack(t, context.Background(), out, pub); !rep.OK || rep.Verified != len(evs) {
			t.Errorf("default pages: ok %v, %d verified", rep.OK, rep.Verified)
		}
	})
}

func TestReadBackDataStream(t *testing.T) {
	readBackPeers(t, func(t *testing.T, p *peer) {
		cfg := p.config()
		cfg.Index, cfg.DataStream = "", p.dataStream()
		out, evs, pub := writeSealedES(t, p, cfg)
		defer p.cleanup(t, nil)

		rep, sources := outputstest.VerifyReadBack(t, context.Background(), pagedReadBack{out}, pub)
		if !rep.OK || rep.Verified != len(evs) {
			t.Fatalf("report: ok %v, %d verified of %d entries, want all %d: %+v", rep.OK, rep.Verified, rep.Entries, len(evs), rep)
		}
		if len(sources) != 1 || !strings.HasPrefix(sources[0], "es://.ds-"+cfg.DataStream+"-") {
			t.Errorf("sources %q, want the data stream's one backing index", sources)
		}
		checkPITsClosed(t, p)
	})
}

func TestReadBackFindsTampering(t *testing.T) {
	readBackPeers(t, func(t *testing.T, p *peer) {
		cfg := p.config()
		out, evs, pub := writeSealedES(t, p, cfg)
		defer p.cleanup(t, indicesOf(t, cfg.Index, evs))
		tmpl, err := outputs.ParseTemplate(cfg.Index)
		if err != nil {
			t.Fatal(err)
		}
		index := func(i int) string { return strings.ToLower(tmpl.Execute(&evs[i])) }

		// Delete seq 2's document.
		p.bulkAs(t, "delete", index(1), evs[1].ID, nil)
		rep, _ := outputstest.VerifyReadBack(t, context.Background(), out, pub)
		if rep.OK || rep.GapCount != 1 || len(rep.Streams) != 1 ||
			!slices.Equal(rep.Streams[0].Gaps, []integrity.Range{{From: 2, To: 2}}) || rep.Entries != len(evs)-1 {
			t.Fatalf("after a delete: ok %v, gaps %+v, %d entries; want exactly seq 2 missing: %+v", rep.OK, rep.Gaps, rep.Entries, rep)
		}

		// Change seq 10's action in place.
		src := p.hits(t, index(9))[evs[9].ID].Source
		p.bulkAs(t, "index", index(9), evs[9].ID, []byte(strings.Replace(string(src), `"action":"`+evs[9].Action+`"`, `"action":"nothing.happened"`, 1)))
		rep, _ = outputstest.VerifyReadBack(t, context.Background(), out, pub)
		if rep.OK || rep.AlteredCount != 1 || rep.Altered[0].Seq != 10 {
			t.Fatalf("after an edit: ok %v, altered %+v; want seq 10: %+v", rep.OK, rep.Altered, rep)
		}

		// A document that is not one of the output's fails too: as
		// unsealed when it converts to an event, as malformed when not.
		p.bulkAs(t, "create", index(0), "stranger", []byte(`{"@timestamp":"2026-11-21T09:30:00Z","message":"not an audit event"}`))
		p.bulkAs(t, "create", index(0), "alien", []byte(`{"hello":"world"}`))
		rep, _ = outputstest.VerifyReadBack(t, context.Background(), out, pub)
		if rep.OK || rep.UnsealedCount != 1 || rep.MalformedCount != 1 || !strings.HasPrefix(rep.Malformed[0].Where, "es://"+index(0)+":") ||
			!strings.Contains(rep.Malformed[0].Detail, `unknown member "hello"`) {
			t.Fatalf("after adding strangers: ok %v, unsealed %+v, malformed %+v: %+v", rep.OK, rep.Unsealed, rep.Malformed, rep)
		}
		checkPITsClosed(t, p)
	})
}

func TestReadBackStopsOnError(t *testing.T) {
	p := emulatedPeer(t)
	out, _, _ := writeSealedES(t, p, p.config())
	calls := 0
	stop := io.ErrShortBuffer
	err := out.ReadBack(context.Background(), func(string, io.Reader) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ReadBack = %v after %d calls, want fn's error after 1", err, calls)
	}
	checkPITsClosed(t, p)
}

func TestReadBackMissingIndex(t *testing.T) {
	p := emulatedPeer(t)
	cfg := p.config()
	cfg.Index = p.prefix + "-constant"
	err := newOutput(t, cfg).ReadBack(context.Background(), func(string, io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "index_not_found_exception") {
		t.Fatalf("ReadBack of a missing index = %v, want index_not_found_exception", err)
	}
}
