package flb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// bigChunk is n Teabar events with ids e0..e(n-1), in record order.
func bigChunk(t *testing.T, n int) []byte {
	t.Helper()
	var chunk []byte
	for i := range n {
		ev := payload(t, "teabar-event.json").(map[string]any)
		ev["id"] = fmt.Sprintf("e%d", i)
		chunk = appendRecord(t, chunk, v2, eventTime, nil, ev)
	}
	return chunk
}

// A chunk larger than a piece is read and delivered in pieces: every
// record once, whatever piece it fell in.
func TestFlushInPieces(t *testing.T) {
	in, out, dlqDir := newFileInstance(t)
	n := 3*pieceRecords + 7
	chunk := bigChunk(t, n)
	if got := len(in.split(chunk)); got != 4 {
		t.Fatalf("split into %d pieces, want 4", got)
	}
	if c := in.Flush(context.Background(), "t", chunk); c != OK {
		t.Fatalf("Flush = %v, want FLB_OK", c)
	}
	evs := readEvents(t, out)
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.ID]++
	}
	if len(evs) != n || len(seen) != n {
		t.Errorf("%d events, %d distinct, want %d of each", len(evs), len(seen), n)
	}
	if l := readLetters(t, dlqDir); len(l) != 0 {
		t.Errorf("%d dead letters, want none", len(l))
	}
	if s := in.Stats(); s.Records != int64(n) || s.Events != int64(n) || s.OK != 1 {
		t.Errorf("stats %+v: one flush of %d records", s, n)
	}
}

// A bad record in one piece and a corrupt tail in the last are
// dead-lettered as in a chunk read whole, and the answer is the chunk's.
func TestFlushInPiecesBadRecords(t *testing.T) {
	in, out, dlqDir := newFileInstance(t)
	n := 2*pieceRecords + 3
	chunk := bigChunk(t, pieceRecords+1)
	chunk = appendRecord(t, chunk, classic, eventTime, nil, "not a map") // in the second piece
	chunk = append(chunk, bigChunk(t, pieceRecords+2)...)
	chunk = append(chunk, 0x92, 0xd7) // a record cut short
	if c := in.Flush(context.Background(), "t", chunk); c != Error {
		t.Fatalf("Flush = %v, want FLB_ERROR (corrupt tail)", c)
	}
	if got := len(readEvents(t, out)); got != n {
		t.Errorf("%d events, want %d", got, n)
	}
	if got := len(readLetters(t, dlqDir)); got != 2 {
		t.Errorf("%d dead letters, want the bad record and the corrupt tail", got)
	}
}

// One piece that cannot be delivered makes the chunk a retry, even when
// the others were delivered: Fluent Bit sends it all again.
func TestFlushInPiecesOneFails(t *testing.T) {
	var refused atomic.Int64
	var poisoned atomic.Bool
	poisoned.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if poisoned.Load() && strings.Contains(string(body), `"e600"`) {
			refused.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg, err := ParseConfig(keys("Output", "webhook", "Webhook_URL", srv.URL, "DLQ_Dir", dir, "Retry_Max_Elapsed", "50ms", "Format", "app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Outputs[0].Retry.InitialInterval = 5 * time.Millisecond
	in, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	chunk := bigChunk(t, 3*pieceRecords)
	if c := in.Flush(context.Background(), "t", chunk); c != Retry {
		t.Fatalf("Flush with one piece refused = %v, want FLB_RETRY", c)
	}
	if refused.Load() == 0 {
		t.Fatal("the poisoned piece never reached the peer")
	}
	if len(readLetters(t, dir)) != 0 {
		t.Error("a retryable failure was dead-lettered")
	}
	poisoned.Store(false)
	if c := in.Flush(context.Background(), "t", chunk); c != OK {
		t.Fatalf("Flush again = %v, want FLB_OK", c)
	}
}
