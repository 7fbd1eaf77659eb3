package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that every
// failure is an *ErrorList whose entries carry the file name.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../examples/policies/*.yaml")
	files = append(files, "../examples/qguard.yaml", "default.yaml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("policy: {rules: [{name: a, match: {src: [\"@\"]}, action: drop}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var l *ErrorList
			if !errors.As(err, &l) || len(l.Errs) == 0 {
				t.Fatalf("error %v is not a non-empty *ErrorList", err)
			}
			for _, e := range l.Errs {
				if e.File != "fuzz.yaml" {
					t.Fatalf("error names file %q", e.File)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil File without error")
		}
	})
}
