package elastictest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

type searchResult struct {
	PitID string `json:"pit_id"`
	Hits  struct {
		Total *struct {
			Value int `json:"value"`
		} `json:"total"`
		MaxScore *float64 `json:"max_score"`
		Hits     []struct {
			Index string            `json:"_index"`
			ID    string            `json:"_id"`
			Score *float64          `json:"_score"`
			Sort  []json.RawMessage `json:"sort"`
		} `json:"hits"`
	} `json:"hits"`
}

func search(t *testing.T, c *elasticsearch.Client, index, body string) (int, searchResult, []byte) {
	t.Helper()
	req := esapi.SearchRequest{Body: strings.NewReader(body)}
	if index != "" {
		req.Index = []string{index}
	}
	status, b := do(t)(req.Do(t.Context(), c))
	var r searchResult
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("search response: %v: %s", err, b)
		}
	}
	return status, r, b
}

func openPIT(t *testing.T, c *elasticsearch.Client, target string) string {
	t.Helper()
	status, b := do(t)(esapi.OpenPointInTimeRequest{Index: []string{target}, KeepAlive: "1m"}.Do(t.Context(), c))
	if status != http.StatusOK {
		t.Fatalf("open PIT on %s: HTTP %d %s", target, status, b)
	}
	var r struct {
		ID     string `json:"id"`
		Shards struct {
			Total int `json:"total"`
		} `json:"_shards"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		t.Fatalf("open PIT: %v: %s", err, b)
	}
	return r.ID
}

func TestPointInTimeSearchAfter(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	var body strings.Builder
	for i := range 7 {
		for _, ix := range []string{"pit-b", "pit-a"} {
			fmt.Fprintf(&body, "{\"create\":{\"_index\":%q,\"_id\":\"%s-%d\"}}\n{\"n\":%d}\n", ix, ix, i, i)
		}
	}
	bulk(t, c, body.String())
	pit := openPIT(t, c, "pit-*")
	if s.PointsInTime() != 1 {
		t.Fatalf("%d points in time open, want 1", s.PointsInTime())
	}
	// Changes after the PIT opened are not seen through it.
	bulk(t, c, "{\"create\":{\"_index\":\"pit-a\",\"_id\":\"late\"}}\n{\"n\":99}\n{\"delete\":{\"_index\":\"pit-b\",\"_id\":\"pit-b-0\"}}\n")

	var got []string
	var after []json.RawMessage
	for page := 0; ; page++ {
		q := map[string]any{"size": 3, "pit": map[string]string{"id": pit, "keep_alive": "1m"},
			"sort": []any{map[string]string{"_index": "asc"}, map[string]any{"_shard_doc": map[string]string{"order": "asc"}}}, "track_total_hits": false}
		if after != nil {
			q["search_after"] = after
		}
		qb, _ := json.Marshal(q)
		status, r, b := search(t, c, "", string(qb))
		if status != http.StatusOK {
			t.Fatalf("page %d: HTTP %d %s", page, status, b)
		}
		if r.PitID != pit || r.Hits.Total != nil || r.Hits.MaxScore != nil {
			t.Fatalf("page %d: pit_id %q, total %v, max_score %v: %s", page, r.PitID, r.Hits.Total, r.Hits.MaxScore, b)
		}
		if len(r.Hits.Hits) == 0 {
			break
		}
		for _, h := range r.Hits.Hits {
			if h.Score != nil || len(h.Sort) != 2 {
				t.Fatalf("hit %s: _score %v, sort %s", h.ID, h.Score, h.Sort)
			}
			got = append(got, h.ID)
		}
		after = r.Hits.Hits[len(r.Hits.Hits)-1].Sort
	}
	var want []string
	for _, ix := range []string{"pit-a", "pit-b"} {
		for i := range 7 {
			want = append(want, fmt.Sprintf("%s-%d", ix, i))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged through %q,\nwant %q", got, want)
	}
	// The second shard's first doc: 1<<32 | 0.
	status, r, b := search(t, c, "", `{"size":1,"from":7,"pit":{"id":"`+pit+`"},"sort":["_index"]}`)
	if status != http.StatusOK || len(r.Hits.Hits) != 1 || string(r.Hits.Hits[0].Sort[0]) != `"pit-b"` || string(r.Hits.Hits[0].Sort[1]) != "4294967296" {
		t.Fatalf("implicit tiebreaker: HTTP %d %s", status, b)
	}
	// Without a sort a PIT search is by _score, then _shard_doc.
	status, r, b = search(t, c, "", `{"size":2,"pit":{"id":"`+pit+`"}}`)
	if status != http.StatusOK || len(r.Hits.Hits) != 2 || r.Hits.Hits[1].ID != "pit-a-1" ||
		string(r.Hits.Hits[1].Sort[0]) != "1" || string(r.Hits.Hits[1].Sort[1]) != "1" || r.Hits.Total.Value != 14 {
		t.Fatalf("PIT search without sort: HTTP %d %s", status, b)
	}

	status, b = do(t)(esapi.ClosePointInTimeRequest{Body: strings.NewReader(`{"id":"` + pit + `"}`)}.Do(t.Context(), c))
	if status != http.StatusOK || !strings.Contains(string(b), `"num_freed":1`) {
		t.Fatalf("close PIT: HTTP %d %s", status, b)
	}
	if s.PointsInTime() != 0 {
		t.Errorf("%d points in time open after close", s.PointsInTime())
	}
	status, b = do(t)(esapi.ClosePointInTimeRequest{Body: strings.NewReader(`{"id":"` + pit + `"}`)}.Do(t.Context(), c))
	if status != http.StatusNotFound || !strings.Contains(string(b), `"num_freed":0`) {
		t.Fatalf("close PIT twice: HTTP %d %s", status, b)
	}
	status, _, b = search(t, c, "", `{"pit":{"id":"`+pit+`"},"sort":["_shard_doc"]}`)
	if status != http.StatusNotFound || !strings.Contains(string(b), "search_context_missing_exception") {
		t.Fatalf("search of a closed PIT: HTTP %d %s", status, b)
	}
}

func TestSortWithoutPIT(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	bulk(t, c, "{\"create\":{\"_index\":\"s-b\",\"_id\":\"1\"}}\n{}\n{\"create\":{\"_index\":\"s-a\",\"_id\":\"2\"}}\n{}\n{\"create\":{\"_index\":\"s-a\",\"_id\":\"3\"}}\n{}\n")
	status, r, b := search(t, c, "s-*", `{"sort":[{"_index":"desc"},"_doc"],"search_after":["s-b",0]}`)
	if status != http.StatusOK || len(r.Hits.Hits) != 2 || r.Hits.Hits[0].ID != "2" || r.Hits.Hits[1].ID != "3" || r.Hits.Total.Value != 3 {
		t.Fatalf("sorted search: HTTP %d %s", status, b)
	}
}

func TestSortAndPITErrors(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	bulk(t, c, "{\"create\":{\"_index\":\"e\",\"_id\":\"1\"}}\n{}\n")
	pit := openPIT(t, c, "e")
	for _, tc := range []struct {
		name, index, body string
		status            int
		want              string
	}{
		{"pit with an index", "e", `{"pit":{"id":"` + pit + `"}}`, 400, "[indices] cannot be used with point in time"},
		{"_shard_doc without pit", "e", `{"sort":["_shard_doc"]}`, 400, "[_shard_doc] sort field cannot be used without [point in time]"},
		{"search_after with from", "", `{"from":1,"pit":{"id":"` + pit + `"},"search_after":[1,1]}`, 400, "[from] parameter must be set to 0 when [search_after] is used"},
		{"search_after length", "", `{"pit":{"id":"` + pit + `"},"sort":["_index"],"search_after":["e"]}`, 400, "search_after has 1 value(s) but sort has 2."},
		{"search_after type", "e", `{"sort":["_doc"],"search_after":["x"]}`, 400, "Failed to parse search_after value for field [_doc]."},
		{"search_after without sort", "e", `{"search_after":[1]}`, 400, "`sort` must be specified when `search_after` is used."},
		{"unemulated sort", "e", `{"sort":[{"@timestamp":"asc"}]}`, 400, "elastictest emulates sorting only on"},
		{"bad order", "e", `{"sort":[{"_doc":"up"}]}`, 400, "Unknown SortOrder [up]"},
		{"unknown pit", "", `{"pit":{"id":"nope"}}`, 404, "No search context found for id [nope]"},
		{"bad keep_alive", "", `{"pit":{"id":"` + pit + `","keep_alive":"forever"}}`, 400, "failed to parse setting [keep_alive]"},
	} {
		status, _, b := search(t, c, tc.index, tc.body)
		if status != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: HTTP %d %s, want %d %q", tc.name, status, b, tc.status, tc.want)
		}
	}
	status, b := do(t)(esapi.OpenPointInTimeRequest{Index: []string{"e"}}.Do(t.Context(), c))
	if status != 400 || !strings.Contains(string(b), "[keep_alive] is not specified") {
		t.Errorf("open PIT without keep_alive: HTTP %d %s", status, b)
	}
	status, b = do(t)(esapi.OpenPointInTimeRequest{Index: []string{"missing"}, KeepAlive: "1m"}.Do(t.Context(), c))
	if status != 404 || !strings.Contains(string(b), "index_not_found_exception") {
		t.Errorf("open PIT on a missing index: HTTP %d %s", status, b)
	}
}
