package engine

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/proto"
)

// runRefusal is what `qguard run` says about the file at path before it
// touches the kernel: config.Load, New (offline: the same settings and
// compiled policy) and the rules' own validation, which rules.New does
// first. nil means run accepts the file.
func runRefusal(t *testing.T, path string) error {
	t.Helper()
	f, err := config.Load(path)
	if err != nil {
		return err
	}
	e, err := New(f, &Options{Offline: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	e.Close()
	return RulesConfig(f).Validate()
}

// agree fails the test unless `qguard check` (config.Check) and run
// accept the file at path alike, and a refusal by run is one check
// reports too.
func agree(t *testing.T, path string) (accepted bool) {
	t.Helper()
	checkErr, runErr := config.Check(path), runRefusal(t, path)
	switch {
	case checkErr == nil && runErr == nil:
		return true
	case checkErr == nil:
		t.Errorf("%s: qguard check accepts it, qguard run refuses: %v", path, runErr)
	case runErr == nil:
		t.Errorf("%s: qguard run accepts it, qguard check refuses: %v", path, checkErr)
	case !strings.Contains(checkErr.Error(), lastLine(runErr.Error())):
		t.Errorf("%s: check and run refuse with different messages:\ncheck: %v\nrun:   %v", path, checkErr, runErr)
	}
	return false
}

// lastLine is the innermost part of run's message: its last line (a
// policy with several problems), without the step New names; check's
// message names the place in the file instead.
func lastLine(s string) string {
	s = s[strings.LastIndex(s, "\n")+1:]
	return strings.TrimPrefix(s, "compile policy: "+ErrConfig.Error()+": ")
}

// TestCheckRunAgreeExamples walks every example configuration through
// both.
func TestCheckRunAgreeExamples(t *testing.T) {
	for _, p := range testutil.ExampleConfigs(t) {
		if !agree(t, p) {
			t.Errorf("%s: example refused", p)
		}
	}
}

// TestCheckRunAgreeProtocols writes every protocol name (and a few that
// are not) into rules.protocols, with and without ports, and into a policy
// rule's proto, and walks each file through both. rules: {protocols:
// [dccp]} is the case that once passed check and failed run.
func TestCheckRunAgreeProtocols(t *testing.T) {
	dir := t.TempDir()
	names := append(proto.Names(), "ipv6-icmp", "TCP", "47", "ipv6", "")
	cases := map[string]bool{} // file body: must be accepted
	for _, n := range names {
		_, known := proto.Number(n)
		cases["rules: {protocols: ["+quote(n)+"]}\n"] = known
		cases["rules: {protocols: ["+quote(n)+"], dports: [80]}\n"] = known && hasPorts(n)
		cases["policy:\n  rules:\n    - {name: r, match: {proto: ["+quote(n)+"]}, action: drop}\n"] = known
	}
	cases["rules: {protocols: [dccp]}\n"] = true
	cases["policy:\n  rules:\n    - {name: r, match: {proto: [47, 300]}, action: drop}\n"] = false
	cases["policy:\n  rules:\n    - {name: r, match: {proto: [47, 0]}, action: drop}\n"] = true
	// Refused by the compiler, not the decoder: the messages must match.
	cases["policy:\n  rules:\n    - {name: r, match: {dst: [\"@nosuchset\"]}, action: drop}\n"] = false
	cases["policy:\n  rules:\n    - {name: r, match: {dst: [\"@a\"]}, action: drop}\n    - {name: s, match: {src: [\"@b\"]}, action: drop}\n"] = false
	i := 0
	for body, want := range cases {
		i++
		path := filepath.Join(dir, "p"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := agree(t, path); got != want {
			t.Errorf("%q: accepted = %v, want %v", body, got, want)
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

// hasPorts: the protocols the rules match ports of.
func hasPorts(name string) bool {
	switch name {
	case "tcp", "udp", "sctp", "udplite":
		return true
	}
	return false
}
