package bench

import (
	"slices"
	"testing"
)

// TestBuiltCommand: a command is built once per run and returned as a
// copy; a failed build skips this call and every later one, unbuilt.
func TestBuiltCommand(t *testing.T) {
	var cmd []string
	var skip string
	builds := 0
	build := func() (string, string) { builds++; return "/tmp/peer", "" }
	for range 2 {
		got, err := builtCommand(&cmd, &skip, build, "bench", "peer-qguard")
		if err != nil || !slices.Equal(got, []string{"/tmp/peer", "bench", "peer-qguard"}) {
			t.Fatalf("builtCommand = %v, %v", got, err)
		}
		got[0] = "changed" // the caller appends to and edits its copy
	}
	if builds != 1 || cmd[0] != "/tmp/peer" {
		t.Errorf("%d builds, command %v; want one build, the command untouched", builds, cmd)
	}

	cmd, skip, builds = nil, "", 0
	fail := func() (string, string) { builds++; return "", "no go tool" }
	for range 2 {
		if _, err := builtCommand(&cmd, &skip, fail); err == nil {
			t.Fatal("a failed build did not skip")
		} else if why, ok := skipped(err); !ok || why != "no go tool" {
			t.Fatalf("failed build: %v, want a skip saying why", err)
		}
	}
	if builds != 1 || cmd != nil {
		t.Errorf("%d builds, command %v after a failed build; want one, none", builds, cmd)
	}

	cmd, skip = []string{"/usr/bin/peer"}, ""
	if got, err := builtCommand(&cmd, &skip, fail); err != nil || !slices.Equal(got, cmd) || builds != 1 {
		t.Errorf("configured command: %v, %v after %d builds; want it, unbuilt", got, err, builds)
	}
}
