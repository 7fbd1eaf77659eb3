package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check and run refuse a flow table too large to allocate with the same
// message (one code path: config.Parse), before run touches the kernel.
func TestFlowsMaxCheckAndRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(path, []byte("flows:\n  max: 1073741824\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = "huge.yaml:2:8: flows.max: 1073741824 needs 64 GiB per queue"
	for _, args := range [][]string{{"check", path}, {"run", "--config", path, "--control", filepath.Join(t.TempDir(), "c.sock")}} {
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		msg := out.String()
		if err != nil {
			msg += err.Error()
		}
		if err == nil || exitCode(err) != 1 || !strings.Contains(msg, want) {
			t.Errorf("%v: exit %v, want 1 and %q:\n%s", args, err, want, msg)
		}
	}
}
