package config

import (
	"path/filepath"
	"testing"
)

// TestExamples checks that every example configuration loads and its
// policy compiles, as `qguard check` would.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("../examples/policies/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	if len(more) < 20 {
		t.Fatalf("only %d policy examples", len(more))
	}
	for _, f := range files {
		if err := Check(f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}
