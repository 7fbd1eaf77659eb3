package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/pktbuild"
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
	tcp := pktbuild.TCP(uint16(la.Port), uint16(ra.Port), 0x10, nil, nil) // ACK
	binary.BigEndian.PutUint32(tcp[4:], snd)
	binary.BigEndian.PutUint32(tcp[8:], rcv)
	binary.BigEndian.PutUint16(tcp[14:], 502) // window
	pkt := pktbuild.IPv4{DF: true, Proto: unix.IPPROTO_TCP, Src: src, Dst: dst}.Build(tcp)
	if !pktbuild.SetChecksums(pkt) {
		return fmt.Errorf("checksum the ACK")
	}
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

// TestIntegrationEvasionIPv6ExtHeaders: a long extension-header chain is
// decoded to its end, so neither a port rule nor a DNS rule is skipped.
func TestIntegrationEvasionIPv6ExtHeaders(t *testing.T) {
	e := newEvasionEnv(t, "qe6")
	src, dst := netipOf(e.top.ClientIP6), netipOf(e.top.ServerIP6)
	for _, ext := range []int{1, 8, 9, 16, 40} {
		t.Run(fmt.Sprintf("udp-port-%d-headers", ext), func(t *testing.T) {
			tag := fmt.Sprintf("ext%d", ext)
			for _, port := range []uint16{evAllowPort, evDropPort} {
				pkt := pktbuild.UDP6(src, dst, 40000+uint16(ext), port, ext, []byte(tag))
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
				pkt := pktbuild.UDP6(src, dst, 41000+uint16(ext), evDNSPort, ext, dnsQueryMsg(name))
				if err := sendIPv6(e.top.Client, pkt, dst); err != nil {
					t.Fatalf("send: %v", err)
				}
			})
		})
	}
}
