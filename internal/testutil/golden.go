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
// when the test runs with -update. On a difference it names the first
// line that differs and saves got in a temporary file for a diff; review
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
		out := "(not saved)"
		if f, err := os.CreateTemp("", "golden-*-"+filepath.Base(path)); err == nil {
			_, _ = f.Write(got)
			_ = f.Close()
			out = f.Name()
		}
		tb.Errorf("%s differs from what the code produces now (saved in %s) from line %d:\n got: %q\nwant: %q\nif the change is meant, rerun with -update and review the diff",
			path, out, firstDiff(got, want)+1, line(got, firstDiff(got, want)), line(want, firstDiff(got, want)))
	}
}

// firstDiff returns the index of the first line where a and b differ.
func firstDiff(a, b []byte) int {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	i := 0
	for i < len(la) && i < len(lb) && bytes.Equal(la[i], lb[i]) {
		i++
	}
	return i
}

// line returns line i of b, or "" past its end.
func line(b []byte, i int) string {
	if l := bytes.Split(b, []byte("\n")); i < len(l) {
		return string(l[i])
	}
	return ""
}
