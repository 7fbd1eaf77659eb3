package config

import (
	"testing"

	"github.com/qguard/qguard/internal/testutil"
)

// TestExamples checks that every example configuration loads and its
// policy compiles, as `qguard check` would.
func TestExamples(t *testing.T) {
	for _, f := range testutil.ExampleConfigs(t) {
		if err := Check(f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}
