package engine

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// nsID identifies a network namespace: its nsfs device and inode.
type nsID struct{ dev, ino uint64 }

// rulesNetNS decides the namespace descriptor the rules work in, given
// Options.NetNS (asked, 0 for none). The rules setns into a non-zero one,
// which needs CAP_SYS_ADMIN even for one's own namespace, and the packaged
// service has CAP_NET_ADMIN alone. So it returns 0 whenever the target is
// the namespace the process's threads share (the daemon), and otherwise
// asked, or, with asked 0 and the calling thread moved elsewhere (a
// library user calling New inside topo.NS.Do, who could setns and so can
// again), that thread's namespace opened: later calls on other threads
// (the block goroutine, Reload, Close) must still find it.
func rulesNetNS(asked int) (fd int, pinned *os.File, err error) {
	shared, err := sharedNetNS()
	if err != nil {
		return 0, nil, err
	}
	mine, err := threadNetNS()
	if err != nil {
		return 0, nil, err
	}
	if asked != 0 {
		var st unix.Stat_t
		if err := unix.Fstat(asked, &st); err != nil {
			return 0, nil, fmt.Errorf("network namespace descriptor %d: %w", asked, err)
		}
		// Without a descriptor New's own calls run where the caller is.
		if (nsID{st.Dev, st.Ino}) == shared && mine == shared {
			return 0, nil, nil
		}
		return asked, nil, nil
	}
	if mine == shared {
		return 0, nil, nil
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return 0, nil, fmt.Errorf("open network namespace: %w", err)
	}
	return int(f.Fd()), f, nil
}

// sharedNetNS is the namespace of the threads that run any goroutine: a
// new goroutine cannot run on the caller's thread if the caller locked it,
// and an unlocked thread is in the namespace they all share.
func sharedNetNS() (nsID, error) {
	type result struct {
		id  nsID
		err error
	}
	ch := make(chan result, 1)
	go func() {
		id, err := threadNetNS()
		ch <- result{id, err}
	}()
	r := <-ch
	return r.id, r.err
}

// threadNetNS identifies the calling thread's network namespace.
func threadNetNS() (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return nsID{}, fmt.Errorf("read network namespace: %w", err)
	}
	return nsID{st.Dev, st.Ino}, nil
}
