package engine

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/testutil"
)

// The rules never setns into the namespace every thread shares (the
// packaged service lacks CAP_SYS_ADMIN), whether asked for by descriptor or
// not; a thread moved to another namespace has that one pinned, and a
// namespace other than the shared one asked for is kept.
func TestIntegrationRulesNetNS(t *testing.T) {
	if fd, f, err := rulesNetNS(0); err != nil || fd != 0 || f != nil {
		t.Fatalf("shared namespace: rulesNetNS(0) = %d, %v, %v; want 0, nil, nil", fd, f, err)
	}
	own, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if fd, f, err := rulesNetNS(int(own.Fd())); err != nil || fd != 0 || f != nil {
		t.Fatalf("own namespace by descriptor: %d, %v, %v; want 0, nil, nil", fd, f, err)
	}
	ns := testutil.NewNetNS(t, "qgnn")
	var r struct {
		pinned, want       nsID
		keptOther, keptOwn bool
	}
	err = ns.Do(func() error {
		r.want, _ = threadNetNS()
		fd, f, err := rulesNetNS(0)
		if err != nil || f == nil || fd != int(f.Fd()) {
			return fmt.Errorf("pin this thread's namespace: %d, %v, %w", fd, f, err)
		}
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		r.pinned = nsID{st.Dev, st.Ino}
		// Asked for by descriptor, this namespace is not the shared one.
		fd2, _, err := rulesNetNS(fd)
		r.keptOther = err == nil && fd2 == fd
		// The shared one asked for from here must be entered: New's own
		// calls run on this thread.
		fd3, _, err := rulesNetNS(int(own.Fd()))
		r.keptOwn = err == nil && fd3 == int(own.Fd())
		return nil
	})
	if err != nil || r.pinned == (nsID{}) || r.pinned != r.want {
		t.Fatalf("other namespace: pinned %v, want %v (err %v)", r.pinned, r.want, err)
	}
	if !r.keptOther || !r.keptOwn {
		t.Errorf("from another namespace, a descriptor asked for was dropped: other kept %v, shared kept %v", r.keptOther, r.keptOwn)
	}
}
