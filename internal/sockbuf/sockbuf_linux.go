package sockbuf

import "golang.org/x/sys/unix"

// SetRecv asks for an n-byte receive buffer on fd. Errors are ignored: the
// kernel keeps what it had, and the caller's counters show the effect.
func SetRecv(fd, n int) { set(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, n) }

// SetSend asks for an n-byte send buffer on fd, as SetRecv does.
func SetSend(fd, n int) { set(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, n) }

func set(fd, force, plain, n int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, n) == nil {
		return
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, n)
}
