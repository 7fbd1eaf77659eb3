package rules

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/testsrv"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// newTopo builds client -> firewall -> server for one test.
func newTopo(t testing.TB, extra ...netip.Addr) (*topo.Topology, int) {
	t.Helper()
	testutil.NeedRoot(t, "CAP_NET_ADMIN: network namespaces, nftables rules")
	tp := testutil.NewTopology(t, &topo.Options{Prefix: nsPrefix, ExtraClientAddrs: extra})
	return tp, nsFd(t, tp.Firewall)
}

// listenIn runs listen in ns and closes what it returns when the test ends.
func listenIn[L io.Closer](t testing.TB, ns topo.NS, listen func() (L, error)) L {
	t.Helper()
	var l L
	if err := ns.Do(func() (err error) {
		l, err = listen()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// listenUDP binds a UDP socket to addr:port in ns until the test ends.
func listenUDP(t testing.TB, ns topo.NS, addr netip.Addr, port uint16) net.PacketConn {
	t.Helper()
	return listenIn(t, ns, func() (net.PacketConn, error) {
		return net.ListenPacket("udp", netip.AddrPortFrom(addr, port).String())
	})
}

// tcpServer listens on addr:port in ns and echoes what it reads.
func tcpServer(t testing.TB, ns topo.NS, addr netip.Addr, port uint16) {
	t.Helper()
	ln := listenIn(t, ns, func() (net.Listener, error) {
		return net.Listen("tcp", netip.AddrPortFrom(addr, port).String())
	})
	go testsrv.AcceptLoop(ln, testsrv.Echo)
}

// udpServer counts datagrams received on addr:port in ns and echoes them.
func udpServer(t testing.TB, ns topo.NS, addr netip.Addr, port uint16) *counter {
	t.Helper()
	pc := listenUDP(t, ns, addr, port)
	c := &counter{}
	go testsrv.ServePacket(pc, func(b []byte) []byte {
		c.add()
		return b
	})
	return c
}

type counter struct{ n atomic.Int64 }

func (c *counter) add()     { c.n.Add(1) }
func (c *counter) get() int { return int(c.n.Load()) }

// dial connects from ns to addr:port over network ("tcp" or "udp").
func dial(ns topo.NS, network string, addr netip.Addr, port uint16) (net.Conn, error) {
	return dialFrom(ns, network, netip.Addr{}, addr, port)
}

// mustDial is dial for a test: it fails the test on an error and closes
// the connection when the test ends.
func mustDial(t testing.TB, ns topo.NS, network string, addr netip.Addr, port uint16) net.Conn {
	t.Helper()
	return mustDialFrom(t, ns, network, netip.Addr{}, addr, port)
}

// mustDialFrom is mustDial with a chosen source address.
func mustDialFrom(t testing.TB, ns topo.NS, network string, src, addr netip.Addr, port uint16) net.Conn {
	t.Helper()
	c, err := dialFrom(ns, network, src, addr, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialFrom is dial with a chosen source address (zero: the kernel's).
func dialFrom(ns topo.NS, network string, src, addr netip.Addr, port uint16) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if src.IsValid() {
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
	}
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = d.Dial(network, netip.AddrPortFrom(addr, port).String())
		return err
	})
	return c, err
}

// echo sends n messages over c and reads each back.
func echo(c net.Conn, n int) error {
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("message %d", i)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		m, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:m]) != msg {
			return fmt.Errorf("echo %q, want %q", buf[:m], msg)
		}
	}
	return nil
}

// udpExchange sends one datagram over a connected UDP socket and waits for
// the echo or an error (ECONNREFUSED when an ICMP unreachable came back).
func udpExchange(c net.Conn, wait time.Duration) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	_, err := c.Read(buf)
	return err
}

// checkRejected connects over TCP from ns to a server on srv:tcpPort and
// sends a datagram to one on srv:udpPort: both must be refused, by a reset
// and by an ICMP port unreachable.
func checkRejected(t testing.TB, tp *topo.Topology, ns topo.NS, srv netip.Addr, tcpPort, udpPort uint16) {
	t.Helper()
	tcpServer(t, tp.Server, srv, tcpPort)
	start := time.Now()
	c, err := dial(ns, "tcp", srv, tcpPort)
	if err == nil {
		_ = c.Close()
	}
	if !isRefused(err) {
		t.Errorf("TCP from %s to %v: %v after %v, want ECONNREFUSED (reset)", ns.Name, srv, err, time.Since(start))
	}
	udpServer(t, tp.Server, srv, udpPort)
	u := mustDial(t, ns, "udp", srv, udpPort)
	err = udpExchange(u, time.Second)
	_ = u.Close()
	if !isRefused(err) {
		t.Errorf("UDP from %s to %v: %v, want ECONNREFUSED (port unreachable)", ns.Name, srv, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
