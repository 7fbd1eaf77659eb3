package engine

import (
	"os"
	"runtime"
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
	testutil.NeedRoot(t, "to create a network namespace")
	type result struct {
		pinned, want       nsID
		keptOther, keptOwn bool
		err                error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime discards the thread
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		var r result
		r.want, _ = threadNetNS()
		fd, f, err := rulesNetNS(0)
		if err != nil || f == nil || fd != int(f.Fd()) {
			done <- result{err: err}
			return
		}
		var st unix.Stat_t
		r.err = unix.Fstat(fd, &st)
		r.pinned = nsID{st.Dev, st.Ino}
		// Asked for by descriptor, this namespace is not the shared one.
		fd2, _, err := rulesNetNS(fd)
		r.keptOther = err == nil && fd2 == fd
		// The shared one asked for from here must be entered: New's own
		// calls run on this thread.
		fd3, _, err := rulesNetNS(int(own.Fd()))
		r.keptOwn = err == nil && fd3 == int(own.Fd())
		f.Close()
		done <- r
	}()
	r := <-done
	if r.err != nil || r.pinned == (nsID{}) || r.pinned != r.want {
		t.Fatalf("other namespace: pinned %v, want %v (err %v)", r.pinned, r.want, r.err)
	}
	if !r.keptOther || !r.keptOwn {
		t.Errorf("from another namespace, a descriptor asked for was dropped: other kept %v, shared kept %v", r.keptOther, r.keptOwn)
	}
}
