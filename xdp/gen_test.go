package xdp

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedObjectsUpToDate proves the committed object and bindings
// were built from the committed bpf/filter.c.
//
// clang's output is byte-for-byte reproducible for a given clang and set of
// headers (bpf2go strips DWARF, and BTF records the source path relative to
// the package), but not across clang versions. So the test works in two
// steps:
//  1. Always, without clang: the SHA-256 of bpf/filter.c and of
//     filter_bpfel.o must match bpf/filter.stamp, which `go generate` writes
//     right after bpf2go. Editing the C source without regenerating fails
//     here.
//  2. With clang of the version recorded in the stamp (the Debian
//     package CI installs): run the //go:generate bpf2go line of gen.go
//     into a temporary directory and compare the object and the Go file
//     byte for byte. With another clang, or none, this step is skipped.
func TestGeneratedObjectsUpToDate(t *testing.T) {
	stamp := readStamp(t)
	for _, f := range []string{"source", "object"} {
		name := stamp[f][1]
		if got := hashFile(t, name); got != stamp[f][0] {
			t.Fatalf("%s changed since the last `go generate` (sha256 %s, stamp says %s): run `go generate ./xdp` and commit the results", name, got, stamp[f][0])
		}
	}
	cc, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not installed: checked the source hash only, not the object bytes")
	}
	out, err := exec.Command(cc, "--version").Output()
	if err != nil {
		t.Fatalf("clang --version: %v", err)
	}
	version, _, _ := strings.Cut(string(out), "\n")
	if want := strings.Join(stamp["compiler"], " "); strings.TrimSpace(version) != want {
		t.Skipf("clang is %q, the objects were built with %q: output differs between versions, checked the source hash only", strings.TrimSpace(version), want)
	}
	dir := t.TempDir()
	args := generateArgs(t)
	args = append(args[:2:2], append([]string{"-output-dir", dir}, args[2:]...)...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=xdp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, name := range []string{"filter_bpfel.o", "filter_bpfel.go"} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh build of bpf/filter.c (%d vs %d bytes): run `go generate ./xdp` and commit the results", name, len(got), len(want))
		}
	}
}

// readStamp parses bpf/filter.stamp into "source"/"object" -> [hash, file]
// and "compiler" -> version words.
func readStamp(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("bpf/filter.stamp")
	if err != nil {
		t.Fatalf("read stamp (run `go generate ./xdp`): %v", err)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		m[f[0]] = f[1:]
	}
	for _, k := range []string{"source", "object"} {
		if len(m[k]) != 2 {
			t.Fatalf("bpf/filter.stamp: no %q line with a hash and a file", k)
		}
	}
	if len(m["compiler"]) == 0 {
		t.Fatal(`bpf/filter.stamp: no "compiler" line`)
	}
	return m
}

func hashFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// generateArgs returns the arguments of the bpf2go //go:generate line in
// gen.go ("run", "github.com/cilium/ebpf/cmd/bpf2go", ...), so the test
// builds exactly as `go generate` does.
func generateArgs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "//go:generate go ")
		if !ok || !strings.Contains(rest, "cmd/bpf2go") {
			continue
		}
		args, err := splitQuoted(rest)
		if err != nil {
			t.Fatalf("gen.go: %v", err)
		}
		return args
	}
	t.Fatal("gen.go: no //go:generate go run .../bpf2go line")
	return nil
}

// splitQuoted splits s at spaces, keeping double-quoted strings whole, as
// go generate does.
func splitQuoted(s string) ([]string, error) {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, os.ErrInvalid
			}
			out = append(out, s[1:end+1])
			s = s[end+2:]
			continue
		}
		word, rest, _ := strings.Cut(s, " ")
		out = append(out, word)
		s = rest
	}
	return out, nil
}
