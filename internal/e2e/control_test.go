package e2e

import (
	"context"
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := top.Firewall.Command(ctx, qguardBin, "run", "--control", file, "--metrics", "").CombinedOutput()
	code := -1
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		code = ee.ExitCode()
	}
	if code != 1 || !strings.Contains(string(out), "is not a socket (a regular file)") {
		t.Errorf("--control a regular file: exit %d, want 1 and a refusal:\n%s", code, out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep: me\n" {
		t.Errorf("the file was changed: %q %v", b, err)
	}
	if tables, err := top.Firewall.Output("nft", "list", "tables"); err != nil || strings.Contains(tables, "qguard") {
		t.Errorf("table installed: %q %v", tables, err)
	}
}
