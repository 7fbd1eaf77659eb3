package config

import (
	"testing"

	"github.com/qguard/qguard/internal/testutil"
)

// TestExamples checks that every example configuration loads and its
// policy compiles (internal/engine's TestCheckRunAgree walks them through
// all of `qguard check`).
func TestExamples(t *testing.T) {
	for _, p := range testutil.ExampleConfigs(t) {
		f, err := Load(p)
		if err == nil {
			_, err = f.Compile(nil)
		}
		if err != nil {
			t.Errorf("%s:\n%v", p, err)
		}
	}
}
