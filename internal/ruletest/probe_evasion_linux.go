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

	"github.com/qguard/qguard/internal/pktbuild"
	"golang.org/x/sys/unix"
)

// The probes below send a case's message the way a client stepping around
// a rule would: after a harmless first message on the same socket or
// connection, together with it in one segment, with a DNS length prefix in
// a segment of its own, a ClientHello cut into several TLS records, a
// datagram behind many IPv6 extension headers. The outcome is always that
// of the case's own message; the first one must be answered.

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
	c, ok := connect(ctx, env, pr, "tcp")
	if !ok {
		return
	}
	defer c.Close()
	first, req := httpGet(s.First, "/", false), httpGet(s.Host, s.Path, true)
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

// httpGet is an HTTP/1.1 GET request; close asks the server to close the
// connection after its response.
func httpGet(host, path string, close bool) string {
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: qguard-test\r\n"
	if close {
		req += "Connection: close\r\n"
	}
	return req + "\r\n"
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
	pkt := pktbuild.UDP6(src, env.dst, sport, s.Port, s.ExtHeaders, s.Data)
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
