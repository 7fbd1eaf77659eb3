package ruletest

import (
	"testing"
)

// TestExamplesParse keeps examples/tests valid and large enough: CI runs
// them, and the issue asks for at least 30 cases.
func TestExamplesParse(t *testing.T) {
	paths, err := CollectFiles([]string{"../../examples/tests"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := ParseAll(paths)
	if err != nil {
		t.Fatal(err)
	}
	n, v6 := 0, 0
	for _, f := range files {
		n += len(f.Cases)
		for _, c := range f.Cases {
			if c.Family == 6 {
				v6++
			}
		}
	}
	if n < 30 || v6 < 10 {
		t.Errorf("examples/tests has %d cases, %d of them IPv6; want at least 30 and 10", n, v6)
	}
	t.Logf("%d files, %d cases, %d IPv6", len(files), n, v6)
}
