package testutil

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update is the -update flag of every test binary that imports testutil:
// go test ./pkg -run Golden -update rewrites the golden files.
var update = flag.Bool("update", false, "rewrite golden files with what the code produces now")

// Golden compares got with the golden file at path, or rewrites the file
// when the test runs with -update. On a difference it saves got beside the
// test's temporary files and says where, so the two can be diffed; review
// a rewritten golden file like code.
func Golden(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (rerun with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		out := filepath.Join(tb.TempDir(), filepath.Base(path))
		_ = os.WriteFile(out, got, 0o644)
		tb.Errorf("%s differs from what the code produces now (saved in %s); if the change is meant, rerun with -update and review the diff", path, out)
	}
}
