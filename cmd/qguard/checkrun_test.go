package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckAndRunRefuseAlike runs the binary: `qguard check FILE` and
// `qguard run --config FILE` refuse a bad file with the same line, for a
// mistake config's decoder finds and for ones the owning packages find
// after it (internal/engine's checkrun_test walks every key; this is the
// command line around it). Run gets no rules, no XDP and a queue nothing
// steers to, in case it wrongly starts; it must not.
func TestCheckAndRunRefuseAlike(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct{ body, want string }{
		{"queue:\n  verdict_mode: perpacket\n",
			`:2:17: queue.verdict_mode: unknown verdict mode "perpacket"; expected one of: batch, vectored, per-packet`},
		{"rules: {hooks: [{hook: input}, {hook: input, priority: 5}]}\n",
			`:1:16: rules.hooks: invalid rules configuration: hooks[1]: hook "input" listed twice`},
		{"names:\n  min_ttl: 2h\n  max_ttl: 1h\n",
			`:2:3: names: invalid names configuration: min_ttl 2h0m0s is above max_ttl 1h0m0s`},
	} {
		path := filepath.Join(dir, "c"+string(rune('0'+i))+".yaml")
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		want := path + c.want
		out, _, code := runBin(t, "check", path)
		if code != 1 || strings.TrimSpace(out) != want {
			t.Errorf("qguard check %q: exit %d, stdout %q; want exit 1, %q", c.body, code, out, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var errb bytes.Buffer
		run := exec.CommandContext(ctx, stamped(t), "run", "--config", path, "--no-rules", "--no-xdp", "--queue", "64999",
			"--metrics", "", "--control", filepath.Join(dir, "control.sock"))
		run.Stderr = &errb
		_ = run.Run()
		cancel()
		if errs, code := errb.String(), run.ProcessState.ExitCode(); code != 1 || !strings.Contains(errs, want) {
			t.Errorf("qguard run --config %q: exit %d, stderr %q; want exit 1 naming %q", c.body, code, errs, want)
		}
	}
}
