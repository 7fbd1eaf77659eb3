package config

import (
	"strings"
	"testing"
	"time"
)

// A prefix set file that is a device must be refused, not read forever.
func TestSetFileNotRegular(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		_, err := Parse("dev.yaml", []byte("policy:\n  sets:\n    bad: {file: /dev/zero}\n"))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "dev.yaml:3:") || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v, want dev.yaml:3: ... not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Parse kept reading /dev/zero")
	}
}
