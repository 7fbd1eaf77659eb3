package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/internal/testsrv"
	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/verdict"
)

// The probes of the differential test: each sends one flow from the
// client and tells what the firewall did to it.

// probeWait is how long a probe waits for an answer before it counts a
// drop: well above a round trip through the queue on a busy machine.
const probeWait = 500 * time.Millisecond

// idSink records the payloads that reach ports 7000-7007 of the server,
// over UDP and TCP.
type idSink struct {
	mu   sync.Mutex
	seen map[string]bool
}

func newIDSink(t *testing.T, ns topo.NS) *idSink {
	s := &idSink{seen: map[string]bool{}}
	for port := 7000; port < 7008; port++ {
		var pc net.PacketConn
		var ln net.Listener
		if err := ns.Do(func() (err error) {
			if pc, err = net.ListenPacket("udp", fmt.Sprintf("[::]:%d", port)); err != nil {
				return err
			}
			ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close(); ln.Close() })
		go testsrv.ServePacket(pc, func(b []byte) []byte {
			s.add(string(b))
			return nil
		})
		go testsrv.AcceptLoop(ln, func(c net.Conn) {
			buf := make([]byte, 256)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := c.Read(buf)
			s.add(string(buf[:n]))
		})
	}
	return s
}

func (s *idSink) add(p string) {
	s.mu.Lock()
	s.seen[p] = true
	s.mu.Unlock()
}

func (s *idSink) has(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[p]
}

// sendProbe sends p from the client and says what happened to it.
func sendProbe(t *testing.T, ns topo.NS, sink *idSink, p diffPacket) diffOutcome {
	switch p.kind {
	case diffTCP:
		return tcpProbe(t, ns, sink, p)
	case diffICMP:
		return icmpProbe(t, ns, p)
	}
	return diffOutcome{first: udpProbe(t, ns, sink, p)}
}

// udpProbe: delivered (accept), an ICMP port unreachable came back
// (reject), or neither in time (drop).
func udpProbe(t *testing.T, ns topo.NS, sink *idSink, p diffPacket) verdict.Action {
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(p.src), net.UDPAddrFromAddrPort(p.dst))
		return err
	}); err != nil {
		t.Errorf("%s: %v", p, err)
		return verdict.ActionUnset
	}
	defer c.Close()
	if _, err := c.Write([]byte(p.payload)); err != nil {
		t.Errorf("send %s: %v", p, err)
		return verdict.ActionUnset
	}
	deadline := time.Now().Add(probeWait)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if sink.has(p.payload) {
			return verdict.ActionAccept
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(buf); errors.Is(err, syscall.ECONNREFUSED) {
			return verdict.ActionReject
		}
	}
	if sink.has(p.payload) {
		return verdict.ActionAccept
	}
	return verdict.ActionDrop
}

// tcpProbe connects: established (accept), reset (reject) or no answer
// in time (drop); once established it sends the payload: received
// (accept), the connection reset (reject), or neither in time (drop).
func tcpProbe(t *testing.T, ns topo.NS, sink *idSink, p diffPacket) diffOutcome {
	d := net.Dialer{Timeout: probeWait, LocalAddr: net.TCPAddrFromAddrPort(p.src)}
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = d.Dial("tcp", p.dst.String())
		return err
	})
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return diffOutcome{first: verdict.ActionReject}
	case errors.As(err, &ne) && ne.Timeout():
		return diffOutcome{first: verdict.ActionDrop}
	case err != nil:
		t.Errorf("connect %s: %v", p, err)
		return diffOutcome{}
	}
	defer c.Close()
	o := diffOutcome{first: verdict.ActionAccept}
	if _, err := c.Write([]byte(p.payload)); err != nil {
		t.Errorf("send %s: %v", p, err)
		return o
	}
	deadline := time.Now().Add(probeWait)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if sink.has(p.payload) {
			o.data = verdict.ActionAccept
			return o
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(buf); errors.Is(err, syscall.ECONNRESET) {
			o.data = verdict.ActionReject
			return o
		}
	}
	o.data = verdict.ActionDrop
	if sink.has(p.payload) {
		o.data = verdict.ActionAccept
	}
	return o
}

// icmpProbe sends an echo request: a reply with its id (accept), a
// destination unreachable quoting it (reject), or neither in time (drop).
func icmpProbe(t *testing.T, ns topo.NS, p diffPacket) diffOutcome {
	network, echo, reply, unreach := "ip4:icmp", byte(8), byte(0), byte(3)
	if p.src.Addr().Is6() {
		network, echo, reply, unreach = "ip6:ipv6-icmp", 128, 129, 1
	}
	var c net.PacketConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenPacket(network, p.src.Addr().String())
		return err
	}); err != nil {
		t.Errorf("%s: %v", p, err)
		return diffOutcome{}
	}
	defer c.Close()
	msg := make([]byte, 8, 8+len(p.payload))
	msg[0] = echo
	binary.BigEndian.PutUint16(msg[4:], p.echoID)
	binary.BigEndian.PutUint16(msg[6:], 1)
	msg = append(msg, p.payload...)
	if p.src.Addr().Is4() { // the kernel sums ICMPv6 itself
		binary.BigEndian.PutUint16(msg[2:], ^pktbuild.Checksum(msg, 0))
	}
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: p.dst.Addr().AsSlice()}); err != nil {
		t.Errorf("send %s: %v", p, err)
		return diffOutcome{}
	}
	deadline := time.Now().Add(probeWait)
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(deadline)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return diffOutcome{first: verdict.ActionDrop}
		}
		b := buf[:n]
		switch {
		case len(b) >= 8 && b[0] == reply && binary.BigEndian.Uint16(b[4:]) == p.echoID:
			return diffOutcome{first: verdict.ActionAccept}
		case len(b) >= 8 && b[0] == unreach && quotesEcho(b[8:], p.echoID):
			return diffOutcome{first: verdict.ActionReject}
		}
	}
}

// quotesEcho reports whether the quoted packet of an ICMP error (an IP
// header and the start of its payload) is an echo request with id.
func quotesEcho(q []byte, id uint16) bool {
	if len(q) < 1 {
		return false
	}
	off := 40
	if q[0]>>4 == 4 {
		off = int(q[0]&0x0f) * 4
	}
	return len(q) >= off+8 && binary.BigEndian.Uint16(q[off+4:]) == id
}
