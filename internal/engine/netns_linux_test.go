package engine

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// In the namespace every thread shares, nothing is pinned (no setns later:
// the packaged service lacks CAP_SYS_ADMIN); on a thread moved to another
// namespace, that namespace is.
func TestIntegrationPinNetNS(t *testing.T) {
	f, err := pinNetNS()
	if err != nil || f != nil {
		t.Fatalf("shared namespace: pinNetNS = %v, %v; want nil, nil", f, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	type result struct {
		pinned, want uint64
		err          error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime discards the thread
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		want, _ := threadNetNS()
		f, err := pinNetNS()
		if err != nil || f == nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		done <- result{pinned: st.Ino, want: want, err: err}
	}()
	r := <-done
	if r.err != nil || r.pinned == 0 || r.pinned != r.want {
		t.Fatalf("other namespace: pinned inode %d, want %d (err %v)", r.pinned, r.want, r.err)
	}
}
