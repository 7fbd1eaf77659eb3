package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/sockbuf"
	"github.com/qguard/qguard/internal/topo"
)

// sink counts the UDP flood arriving at the server: packets and UDP
// payload bytes so far.
type sink interface {
	kind() string
	counts() (pkts, bytes uint64)
	close()
}

// servers is the server side of the UDP loads: the flood's sink and the
// UDP echo of the latency probe (a real socket). The TCP loads bring their
// own (tcp_linux.go, conn_linux.go).
type servers struct {
	sink sink
	echo int
	stop atomic.Bool
	wg   sync.WaitGroup
}

// startServers starts the servers in ns. The flood port is counted by an
// nftables ingress rule on link (nftSink) unless want is sinkSocket or the
// rule cannot be installed (then why says so), else by SO_REUSEPORT
// sockets read with recvmmsg (socketSink).
func startServers(ns topo.NS, link string, sockets int, th thread, want string) (s *servers, why string, err error) {
	s = &servers{echo: -1}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if want != sinkSocket {
		s.sink, err = startNFTSink(ns, link)
		if err != nil && want == sinkNFT {
			return s, "", err
		}
		if err != nil {
			why = err.Error()
		}
	}
	if s.sink == nil {
		if s.sink, err = startSocketSink(ns, sockets, th); err != nil {
			return s, why, err
		}
	}
	err = ns.Do(func() error {
		var err error
		s.echo, err = udpListen(portEcho, false)
		return err
	})
	if err != nil {
		return s, why, fmt.Errorf("start servers in %s: %w", ns.Name, err)
	}
	th.loop(&s.wg, s.reflect)
	return s, why, nil
}

// counts returns flood packets and bytes received so far.
func (s *servers) counts() (pkts, bytes uint64) { return s.sink.counts() }

func (s *servers) reflect() {
	buf := make([]byte, 2048)
	for !s.stop.Load() {
		n, from, err := unix.Recvfrom(s.echo, buf, 0)
		if err != nil || from == nil {
			continue
		}
		_ = unix.Sendto(s.echo, buf[:n], 0, from)
	}
}

func (s *servers) close() {
	s.stop.Store(true)
	s.wg.Wait()
	if s.sink != nil {
		s.sink.close()
	}
	if s.echo >= 0 {
		unix.Close(s.echo)
	}
}

// socketSink reads the flood port with SO_REUSEPORT sockets and recvmmsg.
type socketSink struct {
	fds         []int
	pkts, bytes []counter
	stop        atomic.Bool
	wg          sync.WaitGroup
}

func startSocketSink(ns topo.NS, sockets int, th thread) (*socketSink, error) {
	s := &socketSink{pkts: make([]counter, sockets), bytes: make([]counter, sockets)}
	err := ns.Do(func() error {
		for range sockets {
			fd, err := udpListen(portSink, true)
			if err != nil {
				return err
			}
			s.fds = append(s.fds, fd)
		}
		return nil
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("start socket sink in %s: %w", ns.Name, err)
	}
	for i, fd := range s.fds {
		th.loop(&s.wg, func() { s.count(fd, &s.pkts[i], &s.bytes[i]) })
	}
	return s, nil
}

func (s *socketSink) kind() string { return sinkSocket }

func (s *socketSink) count(fd int, pkts, bytes *counter) {
	b := newMmsgBatch(64, 2048)
	for !s.stop.Load() {
		n, err := recvmmsg(fd, b.msgs, 0)
		if err != nil || n <= 0 {
			continue
		}
		var sum uint64
		for i := range n {
			sum += uint64(b.msgs[i].n)
		}
		pkts.n.Add(uint64(n))
		bytes.n.Add(sum)
	}
}

func (s *socketSink) counts() (pkts, bytes uint64) {
	for i := range s.pkts {
		pkts += s.pkts[i].n.Load()
		bytes += s.bytes[i].n.Load()
	}
	return pkts, bytes
}

func (s *socketSink) close() {
	s.stop.Store(true)
	s.wg.Wait()
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}

// udpListen opens a dual-stack UDP socket on [::]:port with a short receive
// timeout so its loop notices stop.
func udpListen(port int, reuse bool) (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open UDP socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	if reuse {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	sockbuf.SetRecv(fd, 16<<20)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind UDP port %d: %w", port, err)
	}
	return fd, nil
}
