package jsontree

import "testing"

func TestES6Number(t *testing.T) {
	tests := map[float64]string{0: "0", 1: "1", -1.5: "-1.5", 1e21: "1e+21", 1e20: "100000000000000000000",
		1e-7: "1e-7", 0.000001: "0.000001", 123456789012345680000: "123456789012345680000", 4.35: "4.35", 5e-324: "5e-324"}
	for f, want := range tests {
		if got := string(AppendES6Number(nil, f)); got != want {
			t.Errorf("AppendES6Number(%v) = %s, want %s", f, got, want)
		}
	}
}
