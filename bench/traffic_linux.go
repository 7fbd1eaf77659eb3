package bench

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/sockbuf"
	"github.com/qguard/qguard/internal/topo"
)

// Ports the harness uses inside its own namespaces.
const (
	portSink = 9000 // UDP flood sink
	portEcho = 9001 // UDP echo for latency
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

// thread says where a harness thread runs: pinned to cpu (-1: anywhere),
// at nice value nice (0: the caller's).
type thread struct{ cpu, nice int }

// loop runs body on a new goroutine locked to a thread placed as t says.
// The thread is never unlocked, so the runtime throws it away afterwards
// instead of reusing a pinned thread for other goroutines.
func (t thread) loop(wg *sync.WaitGroup, body func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		_ = pinThread(t.cpu)
		if t.nice != 0 {
			_ = renice(0, t.nice)
		}
		body()
	}()
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
	// tid is the sending thread while a paced run goes (cost phase), 0
	// otherwise: its CPU clock carries the firewall's work.
	tid atomic.Int32
	// sendErrs counts the paced thread's failed sends, lastErr the last
	// one's errno: a window that sent nothing says whether the thread
	// did not run or the link refused its frames.
	sendErrs counter
	lastErr  atomic.Int32
	stop     atomic.Bool
	wg       sync.WaitGroup
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
				sockbuf.SetSend(fd, 4<<20)
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
func (g *generator) runUDP(th thread, size int) {
	if g.kind == genPacket {
		g.runPacket(th, size)
		return
	}
	g.stop.Store(false)
	v4 := newMmsgBatch(32, udpPayload(size, false))
	v6 := newMmsgBatch(32, udpPayload(size, true))
	fams := g.families()
	th.loop(&g.wg, func() {
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

// pingUDP sends one datagram every interval to the echo port and waits for
// its reply: the round trip crosses the firewall both ways. It returns the
// round-trip times in order and how many replies never came.
func pingUDP(ns topo.NS, src, dst netip.Addr, samples int, interval time.Duration, th thread) (rtts []time.Duration, lost int, err error) {
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
	th.loop(&wg, func() {
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
