package keypath_test

import (
	"errors"
	"testing"

	"github.com/auditpipe/auditpipe/keypath"
)

func TestError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&keypath.Error{Line: 3, Path: "a.b", Err: errors.New("bad")}, "line 3: a.b: bad"},
		{&keypath.Error{Path: "a.b", Err: errors.New("bad")}, "a.b: bad"},
		{&keypath.Error{Line: 3, Err: errors.New("bad")}, "line 3: bad"},
		{keypath.Errorf("brokers[0]", "%q is not host:port", "x"), `brokers[0]: "x" is not host:port`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestUnder(t *testing.T) {
	inner := errors.Join(keypath.Errorf("brokers", "required"), errors.New("plain"),
		keypath.Under("tls", keypath.Errorf("min_version", "bad")))
	err := keypath.Under("kafka", inner)
	want := "kafka.brokers: required\nkafka: plain\nkafka.tls.min_version: bad"
	if err.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", err, want)
	}
	var pe *keypath.Error
	if !errors.As(err, &pe) || pe.Path != "kafka.brokers" || pe.Err.Error() != "required" {
		t.Errorf("first error: %+v", pe)
	}
	if keypath.Under("x", nil) != nil {
		t.Error("Under(nil) is not nil")
	}
	if got := keypath.Under("", keypath.Errorf("a", "b")).Error(); got != "a: b" {
		t.Errorf("Under(\"\") = %q", got)
	}
}
