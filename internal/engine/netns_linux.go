package engine

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// pinNetNS returns the calling thread's network namespace, open, when later
// calls on other threads (the block goroutine, Reload, Close) would land
// elsewhere: a library user calling New inside topo.NS.Do. Then the rules
// enter it with setns, which needs CAP_SYS_ADMIN, and such a caller has it.
// It returns nil when every thread shares the namespace (the daemon):
// entering one's own namespace needs CAP_SYS_ADMIN too, and the packaged
// service has CAP_NET_ADMIN alone.
func pinNetNS() (*os.File, error) {
	mine, err := threadNetNS()
	if err != nil {
		return nil, err
	}
	// Another goroutine cannot run on this thread if the caller locked it,
	// and an unlocked thread is in the namespace every unlocked thread
	// shares; so the other goroutine sees where later calls will run.
	type result struct {
		ino uint64
		err error
	}
	other := make(chan result, 1)
	go func() {
		ino, err := threadNetNS()
		other <- result{ino, err}
	}()
	r := <-other
	if r.err != nil {
		return nil, r.err
	}
	if r.ino == mine {
		return nil, nil
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	return f, nil
}

// threadNetNS identifies the calling thread's network namespace by inode
// (namespaces all live on the nsfs device).
func threadNetNS() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("read network namespace: %w", err)
	}
	return st.Ino, nil
}
