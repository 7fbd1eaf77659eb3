package testutil

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func netnsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestIntegrationNetNS: Do runs inside the namespace, the thread comes
// back out, and the namespace is gone after the test.
func TestIntegrationNetNS(t *testing.T) {
	var path string
	t.Run("ns", func(t *testing.T) {
		ns := NewNetNS(t, "qgtu")
		path = ns.Path()
		outside := netnsIno(t, "/proc/thread-self/ns/net")
		var inside uint64
		if err := ns.Do(func() error {
			inside = netnsIno(t, "/proc/thread-self/ns/net")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var fdSt unix.Stat_t
		if err := unix.Fstat(ns.Fd(), &fdSt); err != nil {
			t.Fatal(err)
		}
		if inside == outside || inside != fdSt.Ino {
			t.Errorf("inside Do: namespace %d, outside %d, Fd names %d", inside, outside, fdSt.Ino)
		}
		if after := netnsIno(t, "/proc/thread-self/ns/net"); after != outside {
			t.Errorf("after Do the thread is in namespace %d, was %d", after, outside)
		}
	})
	if path == "" {
		t.Skip("not root")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("namespace %s still there after its test: %v", path, err)
	}
}
