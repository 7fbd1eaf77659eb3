package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationControlNotSocket: --control naming an existing file that
// is not a socket is refused before anything is installed, and the file is
// left as it was.
func TestIntegrationControlNotSocket(t *testing.T) {
	top := newTopo(t, "qecs")
	file := filepath.Join(t.TempDir(), "qguard.yaml")
	if err := os.WriteFile(file, []byte("keep: me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runFor(top.Firewall, 10*time.Second, qguardBin, "run", "--control", file, "--metrics", "")
	if code != 1 || !strings.Contains(out, "is not a socket (a regular file)") {
		t.Errorf("--control a regular file: exit %d, want 1 and a refusal:\n%s", code, out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep: me\n" {
		t.Errorf("the file was changed: %q %v", b, err)
	}
	noTable(t, top.Firewall, "--control a regular file")
}
