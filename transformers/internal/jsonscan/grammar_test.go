package jsonscan

import "testing"

func TestCompareUTF16(t *testing.T) {
	// RFC 8785 §3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
	if CompareUTF16([]byte("\U0001F600"), []byte("\uFB33")) >= 0 {
		t.Error("supplementary character must sort before U+FB33")
	}
	if CompareUTF16([]byte("a"), []byte("ab")) >= 0 || CompareUTF16([]byte("b"), []byte("a")) <= 0 {
		t.Error("prefix or ASCII order wrong")
	}
}
