package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/topo"
)

// Crafted packets for the techniques no ordinary client produces: pure ACKs
// inside a real connection's window, and IPv6 with long extension-header
// chains.

// Repair queues of TCP_REPAIR_QUEUE (linux/tcp.h), not in x/sys/unix.
const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// tcpSeqs reads a connection's next send and receive sequence numbers
// through TCP_REPAIR (root), leaving repair mode without a window probe.
func tcpSeqs(c *net.TCPConn) (snd, rcv uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	cerr := rc.Control(func(fd uintptr) {
		s := int(fd)
		if err = unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1); err != nil {
			return
		}
		defer unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, -1) // TCP_REPAIR_OFF_NO_WP
		var v int
		for _, q := range []struct {
			queue int
			dst   *uint32
		}{{tcpSendQueue, &snd}, {tcpRecvQueue, &rcv}} {
			if err = unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue); err != nil {
				return
			}
			if v, err = unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ); err != nil {
				return
			}
			*q.dst = uint32(v)
		}
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	return snd, rcv, err
}

// pureACKs sends n payload-free ACK segments on c's connection (IPv4),
// exactly in its window, from a raw socket in ns: what an attacker sends to
// use up a packet-counting inspection window.
func pureACKs(ns topo.NS, c *net.TCPConn, n int) error {
	snd, rcv, err := tcpSeqs(c)
	if err != nil {
		return fmt.Errorf("read sequence numbers: %w", err)
	}
	la, ra := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	src, _ := netip.AddrFromSlice(la.IP.To4())
	dst, _ := netip.AddrFromSlice(ra.IP.To4())
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], uint16(la.Port))
	binary.BigEndian.PutUint16(tcp[2:], uint16(ra.Port))
	binary.BigEndian.PutUint32(tcp[4:], snd)
	binary.BigEndian.PutUint32(tcp[8:], rcv)
	tcp[12] = 5 << 4
	tcp[13] = 0x10 // ACK
	binary.BigEndian.PutUint16(tcp[14:], 502)
	binary.BigEndian.PutUint16(tcp[16:], l4Checksum(src, dst, unix.IPPROTO_TCP, tcp))
	pkt := ipv4Packet(src, dst, unix.IPPROTO_TCP, tcp)
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.As4()}
		for i := 0; i < n; i++ {
			if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
}

func ipv4Packet(src, dst netip.Addr, proto byte, l4 []byte) []byte {
	h := make([]byte, 20, 20+len(l4))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	h[6] = 0x40 // DF
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], ^sum16(h, 0))
	return append(h, l4...)
}

// udp6WithExtHeaders is an IPv6 UDP datagram behind ext Destination
// Options headers (8 bytes each, one PadN option).
func udp6WithExtHeaders(src, dst netip.Addr, sport, dport uint16, ext int, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	binary.BigEndian.PutUint16(udp[6:], l4Checksum(src, dst, unix.IPPROTO_UDP, udp))
	var chain []byte
	for i := 0; i < ext; i++ {
		next := byte(unix.IPPROTO_DSTOPTS)
		if i == ext-1 {
			next = unix.IPPROTO_UDP
		}
		chain = append(chain, next, 0, 1, 4, 0, 0, 0, 0) // PadN, 4 bytes
	}
	first := byte(unix.IPPROTO_UDP)
	if ext > 0 {
		first = unix.IPPROTO_DSTOPTS
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(chain)+len(udp)))
	h[6] = first
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(append(h, chain...), udp...)
}

// sendIPv6 sends a complete IPv6 packet from ns.
func sendIPv6(ns topo.NS, pkt []byte, dst netip.Addr) error {
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			return fmt.Errorf("IPV6_HDRINCL: %w", err)
		}
		return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet6{Addr: dst.As16()})
	})
}

func sum16(b []byte, s uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// l4Checksum is the TCP/UDP checksum over the pseudo-header and seg.
func l4Checksum(src, dst netip.Addr, proto byte, seg []byte) uint16 {
	var ph []byte
	ph = append(ph, src.AsSlice()...)
	ph = append(ph, dst.AsSlice()...)
	if src.Is4() {
		ph = append(ph, 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(seg)))
	} else {
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(seg)))
		ph = append(ph, 0, 0, 0, proto)
	}
	c := ^sum16(seg, uint32(sum16(ph, 0)))
	if c == 0 && proto == unix.IPPROTO_UDP {
		c = 0xffff
	}
	return c
}

// TestIntegrationEvasionIPv6ExtHeaders: a long extension-header chain is
// decoded to its end, so neither a port rule nor a DNS rule is skipped.
func TestIntegrationEvasionIPv6ExtHeaders(t *testing.T) {
	e := newEvasionEnv(t, "qe6")
	src, dst := netipOf(e.top.ClientIP6), netipOf(e.top.ServerIP6)
	for _, ext := range []int{1, 8, 9, 16, 40} {
		t.Run(fmt.Sprintf("udp-port-%d-headers", ext), func(t *testing.T) {
			tag := fmt.Sprintf("ext%d", ext)
			for _, port := range []uint16{evAllowPort, evDropPort} {
				pkt := udp6WithExtHeaders(src, dst, 40000+uint16(ext), port, ext, []byte(tag))
				if err := sendIPv6(e.top.Client, pkt, dst); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			if !e.seen.waitSeen("udp", fmt.Sprintf("%d:%s", evAllowPort, tag), 2*time.Second) {
				t.Errorf("allowed variant: UDP/%d behind %d extension headers did not arrive", evAllowPort, ext)
			}
			time.Sleep(200 * time.Millisecond)
			if e.seen.count("udp", fmt.Sprintf("%d:%s", evDropPort, tag)) > 0 {
				t.Errorf("evasion: UDP/%d behind %d extension headers passed a drop rule", evDropPort, ext)
			}
		})
		t.Run(fmt.Sprintf("dns-%d-headers", ext), func(t *testing.T) {
			e.both(t, "dns", fmt.Sprintf("dnsext%d", ext), func(name string) {
				pkt := udp6WithExtHeaders(src, dst, 41000+uint16(ext), evDNSPort, ext, dnsQueryMsg(name))
				if err := sendIPv6(e.top.Client, pkt, dst); err != nil {
					t.Fatalf("send: %v", err)
				}
			})
		})
	}
}
