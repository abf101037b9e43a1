package transformers

import "testing"

func TestRawReaders(t *testing.T) {
	obj := []byte(`{"ID":"x","args":{"a":[1,{"b":"}"}],"c":null},"n":-12,"s":"a,b"}`)
	tests := map[string]string{"ID": `"x"`, "args": `{"a":[1,{"b":"}"}],"c":null}`, "n": "-12", "s": `"a,b"`}
	for name, want := range tests {
		if got, ok := RawMember(obj, name); !ok || string(got) != want {
			t.Errorf("RawMember(%s) = %s %v, want %s", name, got, ok, want)
		}
	}
	if _, ok := RawMember(obj, "missing"); ok {
		t.Error("missing member found")
	}
	if n, ok := RawInt([]byte("-12")); !ok || n != -12 {
		t.Errorf("RawInt = %d %v", n, ok)
	}
	if _, ok := RawInt([]byte("1.5")); ok {
		t.Error("RawInt accepted a fraction")
	}
	if s, ok := RawString([]byte(`"abc"`)); !ok || string(s) != "abc" {
		t.Errorf("RawString = %s %v", s, ok)
	}
	if _, ok := RawMember([]byte(`{}`), "a"); ok {
		t.Error("member of an empty object")
	}
}
