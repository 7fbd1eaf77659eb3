package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that notes failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Fatal(...any)          { r.failed = true }

// TestGolden: a matching file passes, a different or missing one fails,
// and -update rewrites the file.
func TestGolden(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // where the failing cases save what they got
	path := filepath.Join(t.TempDir(), "x.golden")
	if err := os.WriteFile(path, []byte("same\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, got string
		fail      bool
	}{
		{path, "same\n", false},
		{path, "other\n", true},
		{path, "", true},
		{path + ".missing", "same\n", true},
	} {
		r := &recorder{TB: t}
		Golden(r, c.path, []byte(c.got))
		if r.failed != c.fail {
			t.Errorf("Golden(%s, %q) failed=%v, want %v", filepath.Base(c.path), c.got, r.failed, c.fail)
		}
	}
	*update = true
	defer func() { *update = false }()
	Golden(t, path, []byte("new\n"))
	if b, err := os.ReadFile(path); err != nil || string(b) != "new\n" {
		t.Errorf("-update wrote %q, %v", b, err)
	}
}
