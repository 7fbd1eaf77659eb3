package service

import (
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/testutil"
)

func TestControlPath(t *testing.T) {
	if got := ControlPath("/tmp/x.sock"); got != "/tmp/x.sock" {
		t.Errorf("configured: %s", got)
	}
	if got := netNSControlPath(4026532291); got != "/run/qguard/control-netns-4026532291.sock" {
		t.Errorf("netns path: %s", got)
	}
	if !isInitNetNS(initNetNSIno) {
		t.Error("the fixed initial inode is not the initial namespace")
	}
}

// TestIntegrationControlPathPerNetNS: the initial namespace keeps the
// plain path, a new one gets its own, told by its inode.
func TestIntegrationControlPathPerNetNS(t *testing.T) {
	testutil.NeedRoot(t, "to create a network namespace")
	ino, err := netNSIno("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if init, err := netNSIno("/proc/1/ns/net"); err == nil && init == ino {
		if got := DefaultControlPath(); got != DefaultControlSocket {
			t.Errorf("initial namespace: %s, want %s", got, DefaultControlSocket)
		}
	}
	ns := testutil.NewNetNS(t, "qgsv")
	var got string
	var nino uint64
	if err := ns.Do(func() (err error) {
		got = DefaultControlPath()
		nino, err = netNSIno("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if nino == ino || !strings.HasPrefix(got, "/run/qguard/control-netns-") || got != netNSControlPath(nino) {
		t.Errorf("new namespace (inode %d, was %d): %s", nino, ino, got)
	}
}
