package ruletest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
)

// A FIFO as a test file or as its policy_file is refused at once, not
// waited on.
func TestParseFileRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	withPolicy := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(withPolicy, []byte("policy_file: fifo.yaml\ncases: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, withPolicy} {
		done := make(chan error, 1)
		go func() { _, err := ParseFile(path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), config.ErrNotRegular.Error()) {
				t.Errorf("%s: %v, want a refusal naming %v", path, err, config.ErrNotRegular)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: ParseFile blocked on the FIFO", path)
		}
	}
}
