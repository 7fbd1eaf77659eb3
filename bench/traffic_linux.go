package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/topo"
)

// Ports the harness uses inside its own namespaces.
const (
	portSink = 9000 // UDP flood sink
	portEcho = 9001 // UDP echo for latency
	portTCP  = 9002 // TCP bulk sink
)

// counter is padded to its own cache line: sink and generator threads bump
// theirs on every batch.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

func sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: port, Addr: a.As16()}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// setBuf forces a socket buffer size (root may exceed rmem_max/wmem_max).
func setBuf(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

// harnessNice is the nice value of every harness and handler thread, set
// once by Run before any thread starts.
var harnessNice atomic.Int32

// loop runs body on a new goroutine locked to a thread pinned to cpu. The
// thread is never unlocked, so the runtime throws it away afterwards instead
// of reusing a pinned thread for other goroutines.
func loop(wg *sync.WaitGroup, cpu int, body func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		_ = pinThread(cpu)
		if n := harnessNice.Load(); n != 0 {
			_ = renice(0, int(n))
		}
		body()
	}()
}

// sink counts UDP packets and bytes arriving on the server's flood port over
// several SO_REUSEPORT sockets, and echoes datagrams on the echo port.
type sink struct {
	kind        string
	ns          topo.NS
	nft         *nftSinkReader // sinkNFT: reads the counters
	nftPkts     atomic.Uint64  // sinkNFT: last counter values read
	nftBytes    atomic.Uint64
	fds         []int
	echo        int
	pkts, bytes []counter
	stop        atomic.Bool
	wg          sync.WaitGroup
	tcpLn       int
	tcpBytes    counter
	tcpMu       sync.Mutex
	tcpConns    []int
}

// startSink starts the sink in ns. The flood port is counted by an
// nftables ingress rule on link (sinkNFT) unless want is sinkSocket or the
// rule cannot be installed (then why says so), else by SO_REUSEPORT sockets
// read with recvmmsg. The echo and TCP ports are always real sockets.
func startSink(ns topo.NS, link string, sockets, cpu int, want string) (s *sink, why string, err error) {
	s = &sink{kind: sinkSocket, ns: ns, echo: -1, tcpLn: -1}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if want != sinkSocket {
		// The reader first: a counting rule installed without one would
		// drop the flood port ahead of the fallback socket sink.
		nft, err := openNFTSink(ns)
		if err == nil {
			if err = installNFTSink(ns, link); err == nil {
				s.nft = nft
			} else {
				_ = nft.Close()
			}
		}
		if err == nil {
			s.kind, sockets = sinkNFT, 0
		} else if want == sinkNFT {
			return s, "", err
		} else {
			why = err.Error()
		}
	}
	s.pkts, s.bytes = make([]counter, sockets), make([]counter, sockets)
	err = ns.Do(func() error {
		for range sockets {
			fd, err := udpListen(portSink, true)
			if err != nil {
				return err
			}
			s.fds = append(s.fds, fd)
		}
		if s.echo, err = udpListen(portEcho, false); err != nil {
			return err
		}
		s.tcpLn, err = tcpListen(portTCP)
		return err
	})
	if err != nil {
		return s, why, fmt.Errorf("start sink in %s: %w", ns.Name, err)
	}
	for i, fd := range s.fds {
		loop(&s.wg, cpu, func() { s.count(fd, &s.pkts[i], &s.bytes[i]) })
	}
	loop(&s.wg, cpu, s.reflect)
	loop(&s.wg, cpu, func() { s.accept(cpu) })
	return s, why, nil
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
	setBuf(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, 16<<20)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind UDP port %d: %w", port, err)
	}
	return fd, nil
}

func tcpListen(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open TCP socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind TCP port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on TCP port %d: %w", port, err)
	}
	return fd, nil
}

func (s *sink) count(fd int, pkts, bytes *counter) {
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

func (s *sink) reflect() {
	buf := make([]byte, 2048)
	for !s.stop.Load() {
		n, from, err := unix.Recvfrom(s.echo, buf, 0)
		if err != nil || from == nil {
			continue
		}
		_ = unix.Sendto(s.echo, buf[:n], 0, from)
	}
}

func (s *sink) accept(cpu int) {
	for !s.stop.Load() {
		fd, _, err := unix.Accept4(s.tcpLn, unix.SOCK_CLOEXEC)
		if err != nil {
			continue
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		s.tcpMu.Lock()
		s.tcpConns = append(s.tcpConns, fd)
		s.tcpMu.Unlock()
		loop(&s.wg, cpu, func() { s.drain(fd) })
	}
}

func (s *sink) drain(fd int) {
	buf := make([]byte, 256<<10)
	for !s.stop.Load() {
		n, err := unix.Read(fd, buf)
		if n == 0 && err == nil {
			return // peer closed
		}
		if n > 0 {
			s.tcpBytes.n.Add(uint64(n))
		}
	}
}

// counts returns packets and bytes received so far, and TCP bytes.
func (s *sink) counts() (pkts, bytes, tcp uint64) {
	if s.kind == sinkNFT {
		// A failed read keeps the last values: the phase then shows
		// fewer deliveries, never more.
		if p, b, err := s.nft.read(); err == nil {
			s.nftPkts.Store(p)
			s.nftBytes.Store(b)
		}
		pkts, bytes = s.nftPkts.Load(), s.nftBytes.Load()
	}
	for i := range s.pkts {
		pkts += s.pkts[i].n.Load()
		bytes += s.bytes[i].n.Load()
	}
	return pkts, bytes, s.tcpBytes.n.Load()
}

func (s *sink) close() {
	s.stop.Store(true)
	s.wg.Wait()
	if s.nft != nil {
		_ = s.nft.Close()
	}
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	for _, fd := range []int{s.echo, s.tcpLn} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	s.tcpMu.Lock()
	for _, fd := range s.tcpConns {
		unix.Close(fd)
	}
	s.tcpConns = nil
	s.tcpMu.Unlock()
}

// generator floods UDP from many source addresses and ports, as raw
// frames through one AF_PACKET socket (kind genPacket) or through one
// connected UDP socket per flow (genUDP), with sendmmsg; or writes TCP
// streams in bulk.
type generator struct {
	kind  string
	fds   []int
	flows []flow  // genPacket: the flows its frames carry
	link  rawLink // genPacket: where the frames go
	sent  counter
	stop  atomic.Bool
	wg    sync.WaitGroup
}

// newUDPGenerator opens one connected UDP socket per (source, port) flow.
// size is the IP packet size; payload is sized to match per family.
func newUDPGenerator(ns topo.NS, srcs []netip.Addr, ports int, dst4, dst6 netip.Addr) (*generator, error) {
	g := &generator{kind: genUDP}
	err := ns.Do(func() error {
		for _, src := range srcs {
			dst := dst4
			if src.Is6() {
				dst = dst6
			}
			for range ports {
				fd, err := unix.Socket(family(src), unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("open UDP socket: %w", err)
				}
				g.fds = append(g.fds, fd)
				setBuf(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, 4<<20)
				if err := unix.Bind(fd, sockaddr(src, 0)); err != nil {
					return fmt.Errorf("bind UDP socket to %s: %w", src, err)
				}
				if err := unix.Connect(fd, sockaddr(dst, portSink)); err != nil {
					return fmt.Errorf("connect UDP socket to %s: %w", dst, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		g.close()
		return nil, fmt.Errorf("start generator in %s: %w", ns.Name, err)
	}
	return g, nil
}

// run floods until stop, rotating over the flows one sendmmsg at a time.
func (g *generator) runUDP(cpu int, size int) {
	if g.kind == genPacket {
		g.runPacket(cpu, size)
		return
	}
	g.stop.Store(false)
	v4 := newMmsgBatch(32, udpPayload(size, false))
	v6 := newMmsgBatch(32, udpPayload(size, true))
	fams := g.families()
	loop(&g.wg, cpu, func() {
		for !g.stop.Load() {
			for i, fd := range g.fds {
				b := v4
				if fams[i] {
					b = v6
				}
				n, err := sendmmsg(fd, b.msgs)
				if err == nil {
					g.sent.n.Add(uint64(n))
				}
			}
		}
	})
}

// families says, per UDP socket, whether it is IPv6.
func (g *generator) families() []bool {
	fams := make([]bool, len(g.fds))
	for i, fd := range g.fds {
		sa, err := unix.Getsockname(fd)
		_, is6 := sa.(*unix.SockaddrInet6)
		fams[i] = err == nil && is6
	}
	return fams
}

func (g *generator) halt() {
	g.stop.Store(true)
	g.wg.Wait()
}

func (g *generator) close() {
	g.halt()
	for _, fd := range g.fds {
		unix.Close(fd)
	}
	g.fds = nil
}

// runTCP connects conns streams from the given sources to the sink and
// writes 64 KiB chunks until halt; sent counts bytes written.
func (g *generator) runTCP(ns topo.NS, srcs []netip.Addr, dst4, dst6 netip.Addr, cpu int) error {
	g.stop.Store(false)
	var fds []int
	err := ns.Do(func() error {
		for _, src := range srcs {
			dst := dst4
			if src.Is6() {
				dst = dst6
			}
			fd, err := unix.Socket(family(src), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open TCP socket: %w", err)
			}
			fds = append(fds, fd)
			tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
			_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
			if err := unix.Bind(fd, sockaddr(src, 0)); err != nil {
				return fmt.Errorf("bind TCP socket to %s: %w", src, err)
			}
			if err := unix.Connect(fd, sockaddr(dst, portTCP)); err != nil {
				return fmt.Errorf("connect TCP %s -> %s: %w", src, dst, err)
			}
		}
		return nil
	})
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return err
	}
	g.fds = append(g.fds, fds...)
	for _, fd := range fds {
		loop(&g.wg, cpu, func() {
			buf := make([]byte, 64<<10)
			for !g.stop.Load() {
				n, err := unix.Write(fd, buf)
				if n > 0 {
					g.sent.n.Add(uint64(n))
				}
				if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
					return
				}
			}
		})
	}
	return nil
}

// pingUDP sends one datagram every interval to the echo port and waits for
// its reply: the round trip crosses the firewall both ways. It returns the
// round-trip times in order and how many replies never came.
func pingUDP(ns topo.NS, src, dst netip.Addr, samples int, interval time.Duration, cpu int) (rtts []time.Duration, lost int, err error) {
	var fd int
	err = ns.Do(func() error {
		var err error
		if fd, err = unix.Socket(family(src), unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open UDP socket: %w", err)
		}
		if err := unix.Bind(fd, sockaddr(src, 0)); err != nil {
			return fmt.Errorf("bind echo socket to %s: %w", src, err)
		}
		return unix.Connect(fd, sockaddr(dst, portEcho))
	})
	if err != nil {
		if fd > 0 {
			unix.Close(fd)
		}
		return nil, 0, fmt.Errorf("start echo client in %s: %w", ns.Name, err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var wg sync.WaitGroup
	rtts = make([]time.Duration, 0, samples)
	loop(&wg, cpu, func() {
		out := make([]byte, 32)
		in := make([]byte, 64)
		next := time.Now()
		for seq := uint32(1); seq <= uint32(samples); seq++ {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			out[0], out[1], out[2], out[3] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
			t0 := time.Now()
			if _, err := unix.Write(fd, out); err != nil {
				lost++
				continue
			}
			for {
				n, err := unix.Read(fd, in)
				if err != nil {
					lost++
					break
				}
				if n >= 4 && uint32(in[0])<<24|uint32(in[1])<<16|uint32(in[2])<<8|uint32(in[3]) == seq {
					rtts = append(rtts, time.Since(t0))
					break
				}
				// A late reply to an earlier probe: keep waiting for ours.
			}
		}
	})
	wg.Wait()
	return rtts, lost, nil
}
