package ruletest

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// The probes below send a case's message the way a client stepping around
// a rule would: after a harmless first message on the same socket or
// connection, together with it in one segment, with a DNS length prefix in
// a segment of its own, a ClientHello cut into several TLS records, a
// datagram behind many IPv6 extension headers. The outcome is always that
// of the case's own message; the first one must be answered.

// probeDNSStream sends a query after s.First on one UDP socket or TCP
// connection.
func probeDNSStream(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	first := *s
	first.Name = s.First
	var q1 []byte
	var id1 uint16
	var err error
	if s.First != "" {
		if q1, id1, err = dnsQuery(&first); err != nil {
			pr.Outcome, pr.Detail = Errored, err.Error()
			return
		}
	}
	q2, id2, err := dnsQuery(s)
	if err != nil {
		pr.Outcome, pr.Detail = Errored, err.Error()
		return
	}
	netw := "udp"
	if s.OverTCP {
		netw = "tcp"
		pr.Proto = unix.IPPROTO_TCP
	} else {
		pr.Proto = unix.IPPROTO_UDP
	}
	c, err := dialer(env, pr).DialContext(ctx, network(env, netw), pr.Dst.String())
	if err != nil {
		classify(err, env, "connect", pr)
		pr.Unsent = pr.Outcome == Dropped
		return
	}
	defer c.Close()
	setLocal(pr, c)
	_ = c.SetDeadline(time.Now().Add(env.timeout))
	frame := func(q []byte) []byte {
		if !s.OverTCP {
			return q
		}
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	}
	read := func() ([]byte, error) {
		if !s.OverTCP {
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			return buf[:n], err
		}
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, err
		}
		a := make([]byte, binary.BigEndian.Uint16(l[:]))
		_, err := io.ReadFull(c, a)
		return a, err
	}
	if q1 != nil && !s.Together {
		if _, err := c.Write(frame(q1)); err != nil {
			classify(err, env, "send first query", pr)
			return
		}
		a, err := read()
		if err != nil {
			pr.Outcome, pr.Detail = Errored, fmt.Sprintf("first query (%s) unanswered: %v", s.First, err)
			return
		}
		if what, ok := checkDNS(id1)(a); !ok {
			pr.Outcome, pr.Detail = Errored, "first query: unexpected answer: "+what
			return
		}
	}
	var writes [][]byte
	switch m := frame(q2); {
	case s.Together:
		writes = [][]byte{append(frame(q1), m...)}
	case s.Split && s.OverTCP:
		writes = [][]byte{m[:2], m[2:]}
	default:
		writes = [][]byte{m}
	}
	for i, w := range writes {
		if i > 0 {
			time.Sleep(20 * time.Millisecond) // its own segment, not coalesced
		}
		if _, err := c.Write(w); err != nil {
			classify(err, env, "send query", pr)
			return
		}
	}
	for {
		a, err := read()
		if err != nil {
			classify(err, env, "wait for answer", pr)
			return
		}
		if s.Together && q1 != nil {
			if _, ok := checkDNS(id1)(a); ok {
				continue // the first query's answer; the case's comes next
			}
		}
		what, ok := checkDNS(id2)(a)
		if !ok {
			pr.Outcome, pr.Detail = Errored, "unexpected answer: "+what
			return
		}
		pr.Outcome, pr.Detail = Delivered, what+" to the second query"
		return
	}
}

// recordSplitter cuts the first TLS record written (the ClientHello) into
// n records and writes them at once.
type recordSplitter struct {
	net.Conn
	n    int
	done bool
}

func (r *recordSplitter) Write(b []byte) (int, error) {
	if r.done || len(b) < 5 || b[0] != 22 {
		return r.Conn.Write(b)
	}
	r.done = true
	l := int(binary.BigEndian.Uint16(b[3:5]))
	if len(b) != 5+l {
		return r.Conn.Write(b)
	}
	body := b[5:]
	var out []byte
	for i := 0; i < r.n; i++ {
		lo, hi := len(body)*i/r.n, len(body)*(i+1)/r.n
		out = append(out, 22, b[1], b[2], byte((hi-lo)>>8), byte(hi-lo))
		out = append(out, body[lo:hi]...)
	}
	if _, err := r.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// probeHTTPStream sends the case's request after s.First's on one
// keep-alive connection, or both in one write (pipelining).
func probeHTTPStream(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	c, err := dialer(env, pr).DialContext(ctx, network(env, "tcp"), pr.Dst.String())
	if err != nil {
		classify(err, env, "connect", pr)
		pr.Unsent = pr.Outcome == Dropped
		return
	}
	defer c.Close()
	setLocal(pr, c)
	_ = c.SetDeadline(time.Now().Add(env.timeout))
	first := "GET / HTTP/1.1\r\nHost: " + s.First + "\r\nUser-Agent: qguard-test\r\n\r\n"
	req := "GET " + s.Path + " HTTP/1.1\r\nHost: " + s.Host + "\r\nUser-Agent: qguard-test\r\nConnection: close\r\n\r\n"
	br := bufio.NewReader(c)
	if !s.Together {
		if _, err := io.WriteString(c, first); err != nil {
			classify(err, env, "send first request", pr)
			return
		}
		if err := readResponse(br); err != nil {
			pr.Outcome, pr.Detail = Errored, fmt.Sprintf("first request (%s) unanswered: %v", s.First, err)
			return
		}
		first = ""
	}
	if _, err := io.WriteString(c, first+req); err != nil {
		classify(err, env, "send request", pr)
		return
	}
	if s.Together {
		if err := readResponse(br); err != nil {
			classify(err, env, "wait for the first response", pr)
			return
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		classify(err, env, "wait for response", pr)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		pr.Outcome, pr.Detail = Errored, "unexpected response: "+resp.Status
		return
	}
	pr.Outcome, pr.Detail = Delivered, "HTTP response to the second request: "+resp.Proto+" "+resp.Status
}

func readResponse(br *bufio.Reader) error {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return err
}

// probeUDPExt sends the datagram over IPv6 behind s.ExtHeaders destination
// options headers from a raw socket, and waits for the echo on a UDP socket
// bound to the same source port.
func probeUDPExt(s *Send, env *probeEnv, pr *Probe) {
	pr.Proto = unix.IPPROTO_UDP
	if !env.dst.Is6() {
		pr.Outcome, pr.Detail = Errored, "ext_headers needs family: 6"
		return
	}
	src := env.src
	if !src.IsValid() {
		src = netip.MustParseAddr("2001:db8:1::2")
	}
	uc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: src.AsSlice(), Port: int(s.SPort)})
	if err != nil {
		classify(err, env, "open udp socket", pr)
		return
	}
	defer uc.Close()
	sport := uint16(uc.LocalAddr().(*net.UDPAddr).Port)
	pr.Src = netip.AddrPortFrom(src, sport)
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		pr.Outcome, pr.Detail = Errored, "raw socket: "+err.Error()
		return
	}
	defer unix.Close(fd)
	pkt := ipv6ExtUDP(src, env.dst, sport, s.Port, s.ExtHeaders, s.Data)
	sa := &unix.SockaddrInet6{Addr: env.dst.As16()}
	if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
		classify(err, env, "send crafted datagram", pr)
		return
	}
	_ = uc.SetDeadline(time.Now().Add(env.timeout))
	buf := make([]byte, 4096)
	n, err := uc.Read(buf)
	if err != nil {
		classify(err, env, "wait for answer", pr)
		return
	}
	if string(buf[:n]) != string(s.Data) {
		pr.Outcome, pr.Detail = Errored, fmt.Sprintf("unexpected answer of %d bytes", n)
		return
	}
	pr.Outcome, pr.Detail = Delivered, fmt.Sprintf("echo of %d bytes sent behind %d extension headers", n, s.ExtHeaders)
}

// ipv6ExtUDP builds an IPv6 packet: n destination options headers (8 bytes
// each, a PadN option), then UDP with its checksum.
func ipv6ExtUDP(src, dst netip.Addr, sport, dport uint16, n int, data []byte) []byte {
	udp := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(data)))
	udp = append(udp, data...)
	s16, d16 := src.As16(), dst.As16()
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s16[:])
	add(d16[:])
	sum += uint32(len(udp)) + unix.IPPROTO_UDP
	add(udp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ck := ^uint16(sum)
	if ck == 0 {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], ck)
	b := make([]byte, 40, 40+8*n+len(udp))
	binary.BigEndian.PutUint32(b[0:], 6<<28)
	binary.BigEndian.PutUint16(b[4:], uint16(8*n+len(udp)))
	b[6], b[7] = unix.IPPROTO_DSTOPTS, 64
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
	for i := 0; i < n; i++ {
		next := byte(unix.IPPROTO_DSTOPTS)
		if i == n-1 {
			next = unix.IPPROTO_UDP
		}
		b = append(b, next, 0, 1, 4, 0, 0, 0, 0) // PadN of 4: 8 bytes
	}
	return append(b, udp...)
}
