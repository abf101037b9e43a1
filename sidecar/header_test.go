package sidecar

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// requestHeader gives serveSource the header net/http would have given it.
func TestRequestHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want http.Header
	}{
		{"usual", "POST /v1/sources/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Signature-256: sha256=ab\r\nContent-Length: 0\r\n\r\n",
			http.Header{"Host": {"x"}, "Content-Type": {"application/json"}, "X-Signature-256": {"sha256=ab"}, "Content-Length": {"0"}}},
		{"repeated and unusual", "POST / HTTP/1.1\r\nHost: x\r\nX-Trace: 1\r\nce-id: abc\r\nX-Trace: 2\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
			http.Header{"Host": {"x"}, "X-Trace": {"1", "2"}, "Ce-Id": {"abc"}, "X-Empty": {""}, "Content-Length": {"0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rh fasthttp.RequestHeader
			if err := rh.Read(bufioReader(tc.raw)); err != nil {
				t.Fatal(err)
			}
			got := requestHeader(&rh)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// A value appended to one header must not show in another.
			got["Host"] = append(got["Host"], "y")
			for k, v := range tc.want {
				if k != "Host" && !reflect.DeepEqual(got[k], v) {
					t.Fatalf("appending to Host changed %s: %v", k, got[k])
				}
			}
		})
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
