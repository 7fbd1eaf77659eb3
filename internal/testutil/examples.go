package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// ExampleConfigs returns every example configuration file
// (examples/*.yaml and examples/policies/*.yaml), found from the module
// root above the test's directory. It fails tb when the tree looks wrong,
// so a test walking the examples cannot pass by finding none.
func ExampleConfigs(tb testing.TB) []string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	policies, _ := filepath.Glob(filepath.Join(root, "examples", "policies", "*.yaml"))
	if len(files) == 0 || len(policies) < 20 {
		tb.Fatalf("found %d example files and %d example policies under %s, expected the examples/ tree", len(files), len(policies), root)
	}
	return append(files, policies...)
}

// moduleRoot is the nearest directory at or above the working directory
// holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
