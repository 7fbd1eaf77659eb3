package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if fn does not return in time: a refusal must not
// block.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still blocked after 10s", what)
		return nil
	}
}

// nonRegular makes one file of each kind ReadFile refuses, by kind.
func nonRegular(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return map[string]string{"a FIFO": fifo, "a socket": sock, "a directory": dir,
		"a character device": "/dev/zero"}
}

func TestReadFileRefusesNonRegular(t *testing.T) {
	for kind, path := range nonRegular(t) {
		err := within(t, kind, func() error { _, err := ReadFile(path); return err })
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "it is "+kind) ||
			!strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want %v naming the path and %q", path, err, ErrNotRegular, kind)
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte("queue: {num: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok); err != nil || string(b) != "queue: {num: 3}\n" {
		t.Errorf("regular file: %q, %v", b, err)
	}
	// A symbolic link to a regular file is that file.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(link); err != nil {
		t.Errorf("symlink to a regular file: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxFileSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	if _, err := ReadFile(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("file over MaxFileSize: %v, want %v", err, ErrTooLarge)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// Load (check, run, reload) and prefix set files refuse every kind alike,
// without blocking.
func TestLoadRefusesNonRegular(t *testing.T) {
	for kind, path := range nonRegular(t) {
		err := within(t, "Load "+kind, func() error { _, err := Load(path); return err })
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("Load(%s): %v, want %v", kind, err, ErrNotRegular)
		}
		yaml := "policy:\n  sets:\n    bad: {file: " + path + "}\n"
		err = within(t, "set file "+kind, func() error { _, err := Parse("sets.yaml", []byte(yaml)); return err })
		if err == nil || !strings.Contains(err.Error(), "sets.yaml:3:") || !strings.Contains(err.Error(), "it is "+kind) {
			t.Errorf("set file %s: %v, want sets.yaml:3: ... it is %s", kind, err, kind)
		}
	}
}
