package testutil

import (
	"os"
	"testing"
)

func TestNeedRoot(t *testing.T) {
	ran := false
	t.Run("inner", func(t *testing.T) {
		NeedRoot(t, "this test")
		ran = true
	})
	if ran != (os.Geteuid() == 0) {
		t.Fatalf("NeedRoot let the test run = %v as uid %d", ran, os.Geteuid())
	}
}
