package service

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// initNetNSIno is the fixed inode number of the initial network namespace
// (NET_NS_INIT_INO in linux/nsfs.h, Linux 6.18 and later). Older kernels
// number it like any other, and then /proc/1/ns/net tells, where readable.
const initNetNSIno = 0xEFFFFFF9

// fixedInitIno: the first kernel that numbers the initial namespaces.
var fixedInitIno = [2]int{6, 18}

// ControlPath is the control socket a daemon listens on and `status` and
// `reload` connect to: configured (control.socket, --control) if set, else
// DefaultControlPath.
func ControlPath(configured string) string {
	if configured != "" {
		return configured
	}
	return DefaultControlPath()
}

// DefaultControlPath is DefaultControlSocket in the initial network
// namespace and control-netns-<inode>.sock beside it in any other, so that
// daemons in several namespaces run without flags and each namespace's
// `qguard status` finds its own (/run is shared, the namespace is not).
// When the namespace cannot be told apart from the initial one (an older
// kernel and no access to /proc/1), it is DefaultControlSocket.
func DefaultControlPath() string {
	ino, err := netNSIno("/proc/thread-self/ns/net")
	if err != nil || isInitNetNS(ino) {
		return DefaultControlSocket
	}
	return netNSControlPath(ino)
}

func netNSControlPath(ino uint64) string {
	return filepath.Join(filepath.Dir(DefaultControlSocket), fmt.Sprintf("control-netns-%d.sock", ino))
}

func isInitNetNS(ino uint64) bool {
	if ino == initNetNSIno {
		return true
	}
	if kernelAtLeast(fixedInitIno) {
		return false
	}
	init, err := netNSIno("/proc/1/ns/net")
	return err != nil || ino == init
}

func kernelAtLeast(v [2]int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > v[0] || major == v[0] && minor >= v[1]
}

func netNSIno(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("read network namespace: %w", err)
	}
	return st.Ino, nil
}
