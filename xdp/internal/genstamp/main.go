// Command genstamp records what the committed BPF object was built from:
// the SHA-256 of the C source and of the object, and the compiler version.
// `go generate ./xdp` runs it right after bpf2go; the xdp package's
// TestGeneratedObjectsUpToDate reads the stamp.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	src := flag.String("src", "bpf/filter.c", "C source")
	obj := flag.String("obj", "filter_bpfel.o", "generated object")
	cc := flag.String("cc", "clang", "compiler bpf2go used")
	out := flag.String("out", "bpf/filter.stamp", "stamp file to write")
	flag.Parse()
	if err := run(*src, *obj, *cc, *out); err != nil {
		fmt.Fprintln(os.Stderr, "genstamp:", err)
		os.Exit(1)
	}
}

func run(src, obj, cc, out string) error {
	sh, err := fileHash(src)
	if err != nil {
		return err
	}
	oh, err := fileHash(obj)
	if err != nil {
		return err
	}
	v, err := exec.Command(cc, "--version").Output()
	if err != nil {
		return fmt.Errorf("run %s --version: %w", cc, err)
	}
	first, _, _ := strings.Cut(string(v), "\n")
	text := "# Written by `go generate` (xdp/internal/genstamp); checked by TestGeneratedObjectsUpToDate.\n" +
		"source " + sh + " " + src + "\n" +
		"object " + oh + " " + obj + "\n" +
		"compiler " + strings.TrimSpace(first) + "\n"
	return os.WriteFile(out, []byte(text), 0o644)
}

func fileHash(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
