package bench

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/sockbuf"
	"github.com/qguard/qguard/internal/topo"
)

// Generator kinds, as reported in the output header.
const (
	genPacket = "AF_PACKET"
	genUDP    = "UDP sockets"
)

// packetBatch is the frames one sendmmsg hands the kernel.
const packetBatch = 64

// rawLink is where the raw-frame generator sends: the client's link and
// the firewall's MAC on the other end of it.
type rawLink struct {
	ifindex        int
	srcMAC, dstMAC net.HardwareAddr
}

// lookupRawLink reads the client link's index and MAC and the MAC of the
// firewall's end of it, each inside its own namespace.
func lookupRawLink(t *topo.Topology) (l rawLink, err error) {
	err = t.Client.Do(func() error {
		ifi, err := net.InterfaceByName(t.ClientLink)
		if err != nil {
			return err
		}
		l.ifindex, l.srcMAC = ifi.Index, ifi.HardwareAddr
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("look up %s in %s: %w", t.ClientLink, t.Client.Name, err)
	}
	err = t.Firewall.Do(func() error {
		ifi, err := net.InterfaceByName(t.FwClientLink)
		if err != nil {
			return err
		}
		l.dstMAC = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("look up %s in %s: %w", t.FwClientLink, t.Firewall.Name, err)
	}
	if len(l.srcMAC) != 6 || len(l.dstMAC) != 6 {
		return l, fmt.Errorf("look up link MACs: not Ethernet (%v, %v)", l.srcMAC, l.dstMAC)
	}
	return l, nil
}

// newFloodGenerator is the UDP flood generator: prebuilt Ethernet frames
// written to the client's link through an AF_PACKET socket that bypasses
// the qdisc, so the client spends no time in its own UDP/IP stack and the
// generator's CPU goes to the firewall's forwarding instead. When that
// socket cannot be used it falls back to one connected UDP socket per flow,
// and says why.
func newFloodGenerator(t *topo.Topology, srcs []netip.Addr, ports int, dst4, dst6 netip.Addr, want string) (g *generator, why string, err error) {
	if want != genUDP {
		g, err = newPacketGenerator(t, srcs, ports, dst4, dst6)
		if err == nil {
			return g, "", nil
		}
		if want == genPacket {
			return nil, "", err
		}
		why = err.Error()
	}
	g, err = newUDPGenerator(t.Client, srcs, ports, dst4, dst6)
	return g, why, err
}

func newPacketGenerator(t *topo.Topology, srcs []netip.Addr, ports int, dst4, dst6 netip.Addr) (*generator, error) {
	l, err := lookupRawLink(t)
	if err != nil {
		return nil, err
	}
	g := &generator{kind: genPacket, link: l}
	for _, src := range srcs {
		dst := dst4
		if src.Is6() {
			dst = dst6
		}
		for range ports {
			// Source ports as a kernel would pick them, distinct per flow.
			g.flows = append(g.flows, flow{src: src, dst: dst, srcPort: uint16(40000 + len(g.flows)), dstPort: portSink})
		}
	}
	if len(g.flows) == 0 {
		return nil, fmt.Errorf("start raw generator: no flows")
	}
	err = t.Client.Do(func() error {
		// Protocol 0: the socket only sends, it never sees a packet.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open AF_PACKET socket: %w", err)
		}
		g.fds = append(g.fds, fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("set PACKET_QDISC_BYPASS: %w", err)
		}
		// Every frame in flight is charged to this one socket until the
		// sink frees it, including the thousands a queue holds: a small
		// buffer would make the generator wait on the handler.
		sockbuf.SetSend(fd, 256<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: l.ifindex}); err != nil {
			return fmt.Errorf("bind AF_PACKET socket to %s: %w", t.ClientLink, err)
		}
		return nil
	})
	if err != nil {
		g.close()
		return nil, fmt.Errorf("start raw generator in %s: %w", t.Client.Name, err)
	}
	return g, nil
}

// frames prebuilds one batch of frames of ipSize-byte IP packets, cycling
// over the flows so every sendmmsg spreads over them.
func (g *generator) frames(ipSize int) *mmsgBatch { return g.framesTo(ipSize, g.link.dstMAC) }

// foreignMAC is a locally administered unicast address nobody has: frames
// to it are dropped on arrival at the firewall's link (PACKET_OTHERHOST).
func foreignMAC() net.HardwareAddr { return net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01} }

// framesTo is frames with dstMAC as the frames' destination.
func (g *generator) framesTo(ipSize int, dstMAC net.HardwareAddr) *mmsgBatch {
	n := max(packetBatch, len(g.flows))
	size := 14 + max(ipSize, 48+1)
	b := newMmsgBatch(n, size)
	for i := range n {
		fl := g.flows[i%len(g.flows)]
		l := buildFrame(b.buf[i*size:], dstMAC, g.link.srcMAC, fl, ipSize)
		b.iovs[i].SetLen(l)
	}
	return b
}

// runPacket floods until stop, one batch of frames per sendmmsg.
func (g *generator) runPacket(th thread, ipSize int) {
	g.stop.Store(false)
	b := g.frames(ipSize)
	fd := g.fds[0]
	th.loop(&g.wg, func() {
		for !g.stop.Load() {
			n, err := sendmmsg(fd, b.msgs)
			if err == nil {
				g.sent.n.Add(uint64(n))
			}
		}
	})
}

// flowCount is the number of distinct UDP flows the generator sends.
func (g *generator) flowCount() int {
	if g.kind == genPacket {
		return len(g.flows)
	}
	return len(g.fds)
}

// runPaced sends ipSize-byte packets at rate packets/s until halt, a few at
// a time with short sleeps, from a thread whose id it publishes (tid) for
// the cost phase; foreign sends them to a MAC nobody has (calibration).
// The raw-frame generator only.
func (g *generator) runPaced(th thread, ipSize, rate int, foreign bool) {
	g.stop.Store(false)
	b := g.frames(ipSize)
	if foreign {
		b = g.framesTo(ipSize, foreignMAC())
	}
	fd := g.fds[0]
	// Returns once the thread runs, so that every look at its clock
	// (cpuSent, snapshots) sees the same thread.
	started := make(chan struct{})
	defer func() { <-started }()
	th.loop(&g.wg, func() {
		g.tid.Store(int32(unix.Gettid()))
		close(started)
		defer g.tid.Store(0)
		// A raw nanosleep of a millisecond on this locked thread, then
		// what is due: every wake-up costs the thread CPU time that the
		// calibration must subtract, so few of them keep that part small
		// and steady; the firewall sees bursts of rate/1000 packets.
		nap := unix.NsecToTimespec(int64(time.Millisecond))
		start := time.Now()
		var sent uint64
		off := 0
		for !g.stop.Load() {
			due := uint64(time.Since(start).Seconds() * float64(rate))
			if due <= sent {
				_ = unix.Nanosleep(&nap, nil)
				continue
			}
			k := min(int(due-sent), len(b.msgs)-off)
			n, err := sendmmsg(fd, b.msgs[off:off+k])
			if err != nil || n <= 0 {
				g.sendErrs.n.Add(1)
				if errno, ok := err.(unix.Errno); ok {
					g.lastErr.Store(int32(errno))
				}
				continue
			}
			sent += uint64(n)
			g.sent.n.Add(uint64(n))
			off = (off + n) % len(b.msgs)
		}
	})
}

// cpuSent reads the paced thread's CPU time and the packets sent so far.
func (g *generator) cpuSent() (time.Duration, uint64, error) {
	tid := g.tid.Load()
	if tid == 0 {
		return 0, 0, fmt.Errorf("read generator CPU: no paced thread running")
	}
	c, err := threadCPU(int(tid))
	return c, g.sent.n.Load(), err
}
