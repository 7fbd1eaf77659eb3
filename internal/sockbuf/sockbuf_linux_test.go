package sockbuf

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The kernel doubles what it is asked for (socket(7)); without
// CAP_NET_ADMIN it caps the plain request at rmem_max/wmem_max, so only a
// growth is certain.
func TestSet(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, c := range []struct {
		name string
		opt  int
		set  func(fd, n int)
	}{{"receive", unix.SO_RCVBUF, SetRecv}, {"send", unix.SO_SNDBUF, SetSend}} {
		before, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, c.opt)
		c.set(fd, 4<<20)
		after, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, c.opt)
		if after <= before && before < 4<<20 {
			t.Errorf("%s buffer %d -> %d after asking for 4 MiB", c.name, before, after)
		}
		if unix.Geteuid() == 0 && after < 4<<20 {
			t.Errorf("%s buffer %d as root, want at least 4 MiB (SO_*BUFFORCE)", c.name, after)
		}
	}
}
