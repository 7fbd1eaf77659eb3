package ruletest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/internal/topo"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Probe is what one probe did and saw.
type Probe struct {
	Outcome Expect
	// Detail says what happened, for humans: "connected", "timeout after
	// 300ms", "connection refused (TCP reset)", ...
	Detail string
	// Src and Dst are the probe's endpoints; for ICMP the port is the echo
	// identifier. Src's port is 0 when the socket never got one.
	Src, Dst netip.AddrPort
	Proto    uint8 // IP protocol number
	// Unsent: the data the case is about (a request, a hello, a query
	// over TCP) was never sent, because the connection timed out before
	// it was established. Dropped then says nothing of that data's fate.
	Unsent bool
}

// probeEnv is where and how a probe runs.
type probeEnv struct {
	src     netip.Addr // zero: let the kernel choose (from: firewall)
	sport   uint16     // zero: ephemeral
	dst     netip.Addr
	timeout time.Duration
	uid     *uint32
	gid     *uint32
	mark    uint32
}

// sendProbe runs one probe. It must be called on a thread inside the
// sending namespace (topo.NS.Do); sockets are opened there.
func sendProbe(ctx context.Context, s *Send, env *probeEnv) Probe {
	pr := Probe{Dst: netip.AddrPortFrom(env.dst, s.Port), Proto: unix.IPPROTO_TCP}
	if env.src.IsValid() {
		pr.Src = netip.AddrPortFrom(env.src, 0)
	}
	restore, err := setOwner(env)
	if err != nil {
		pr.Outcome, pr.Detail = Errored, err.Error()
		return pr
	}
	defer restore()
	switch s.Kind {
	case KindTCP:
		probeTCP(ctx, s, env, &pr)
	case KindUDP:
		pr.Proto = unix.IPPROTO_UDP
		if s.ExtHeaders > 0 {
			probeUDPExt(s, env, &pr)
			break
		}
		probeUDP(ctx, s, env, &pr)
	case KindDNS:
		probeDNS(ctx, s, env, &pr)
	case KindTLS:
		probeTLS(ctx, s, env, &pr)
	case KindHTTP:
		if s.First != "" {
			probeHTTPStream(ctx, s, env, &pr)
			break
		}
		probeHTTP(ctx, s, env, &pr)
	case KindICMP:
		probeICMP(s, env, &pr)
	default:
		pr.Outcome, pr.Detail = Errored, "nothing to send"
	}
	return pr
}

// setOwner switches the thread's filesystem UID/GID, which the kernel
// copies into sockets created afterwards. The caller's thread is locked
// (topo.NS.Do), and setfsuid(2) is per thread, so other goroutines never
// see it.
func setOwner(env *probeEnv) (func(), error) {
	restore := func() {}
	if env.gid != nil {
		old, _ := unix.SetfsgidRetGid(int(*env.gid))
		restore = func() { _, _ = unix.SetfsgidRetGid(old) }
	}
	if env.uid != nil {
		old, _ := unix.SetfsuidRetUid(int(*env.uid))
		prev := restore
		restore = func() { _, _ = unix.SetfsuidRetUid(old); prev() }
	}
	return restore, nil
}

// dialer binds the socket to env.src before connecting and records the
// local port, so a connection that never completes can still be looked up
// in the firewall's decisions.
func dialer(env *probeEnv, pr *Probe) *net.Dialer {
	return &net.Dialer{Timeout: env.timeout, Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if env.mark != 0 {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(env.mark)); serr != nil {
					return
				}
			}
			var sa unix.Sockaddr
			if env.dst.Is4() {
				sa4 := &unix.SockaddrInet4{Port: int(env.sport)}
				if env.src.IsValid() {
					sa4.Addr = env.src.As4()
				}
				sa = sa4
			} else {
				sa6 := &unix.SockaddrInet6{Port: int(env.sport)}
				if env.src.IsValid() {
					sa6.Addr = env.src.As16()
				}
				sa = sa6
			}
			if env.sport != 0 {
				// A fixed source port is reused by repeated probes while
				// the previous socket lingers in TIME_WAIT.
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			if serr = unix.Bind(int(fd), sa); serr != nil {
				return
			}
			got, err := unix.Getsockname(int(fd))
			if err != nil {
				serr = err
				return
			}
			pr.Src = sockaddrPort(got)
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

func sockaddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// classify turns a socket error into an outcome.
func classify(err error, env *probeEnv, what string, pr *Probe) {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		pr.Outcome, pr.Detail = Dropped, fmt.Sprintf("%s: no answer within %v", what, env.timeout)
	case errors.Is(err, unix.ECONNREFUSED):
		pr.Outcome, pr.Detail = Rejected, what+": connection refused (TCP reset or ICMP port unreachable)"
	case errors.Is(err, unix.ECONNRESET):
		pr.Outcome, pr.Detail = Rejected, what+": connection reset (TCP reset)"
	case errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EACCES),
		errors.Is(err, unix.EPROTO), errors.Is(err, unix.EHOSTDOWN):
		pr.Outcome, pr.Detail = Rejected, fmt.Sprintf("%s: %v (ICMP unreachable)", what, errors.Unwrap(err))
	case errors.Is(err, unix.EPERM):
		// A locally sent packet that netfilter drops synchronously.
		pr.Outcome, pr.Detail = Dropped, what+": operation not permitted (dropped by the local firewall)"
	default:
		pr.Outcome, pr.Detail = Errored, fmt.Sprintf("%s: %v", what, err)
	}
}

func network(env *probeEnv, base string) string {
	if env.dst.Is4() {
		return base + "4"
	}
	return base + "6"
}

// connect opens the probe's socket to its destination over netw ("tcp" or
// "udp"; for TCP it connects) and sets the deadline of the exchange. A
// connection that timed out leaves the case's data unsent. The caller
// closes the socket.
func connect(ctx context.Context, env *probeEnv, pr *Probe, netw string) (net.Conn, bool) {
	c, err := dialer(env, pr).DialContext(ctx, network(env, netw), pr.Dst.String())
	if err != nil {
		what := "connect"
		if netw == "udp" {
			what = "open udp socket"
		}
		classify(err, env, what, pr)
		pr.Unsent = pr.Outcome == Dropped
		return nil, false
	}
	setLocal(pr, c)
	_ = c.SetDeadline(time.Now().Add(env.timeout))
	return c, true
}

func probeTCP(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	c, ok := connect(ctx, env, pr, "tcp")
	if !ok {
		pr.Unsent = pr.Unsent && len(s.Data) > 0
		return
	}
	defer c.Close()
	if len(s.Data) == 0 {
		pr.Outcome, pr.Detail = Delivered, "connected"
		return
	}
	if _, err := c.Write(s.Data); err != nil {
		classify(err, env, "send data", pr)
		return
	}
	got := make([]byte, len(s.Data))
	if _, err := io.ReadFull(c, got); err != nil {
		classify(err, env, "read echo", pr)
		return
	}
	if !bytes.Equal(got, s.Data) {
		pr.Outcome, pr.Detail = Errored, fmt.Sprintf("echo differs: sent %q, got %q", s.Data, got)
		return
	}
	pr.Outcome, pr.Detail = Delivered, fmt.Sprintf("connected, %d bytes echoed", len(got))
}

// probeUDP sends s.Data on a connected UDP socket and waits for its echo.
func probeUDP(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	c, ok := connect(ctx, env, pr, "udp")
	if !ok {
		return
	}
	defer c.Close()
	if _, err := c.Write(s.Data); err != nil {
		classify(err, env, "send datagram", pr)
		return
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		classify(err, env, "wait for answer", pr)
		return
	}
	if !bytes.Equal(buf[:n], s.Data) {
		pr.Outcome, pr.Detail = Errored, fmt.Sprintf("unexpected answer: echo of %d bytes", n)
		return
	}
	pr.Outcome, pr.Detail = Delivered, fmt.Sprintf("echo of %d bytes", n)
}

func dnsQuery(s *Send) ([]byte, uint16, error) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	name := s.Name
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, 0, fmt.Errorf("dns name %q: %w", s.Name, err)
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.Type(s.QType), Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	return q, id, err
}

func checkDNS(id uint16) func([]byte) (string, bool) {
	return func(b []byte) (string, bool) {
		var p dnsmessage.Parser
		h, err := p.Start(b)
		if err != nil {
			return fmt.Sprintf("not a DNS message (%v)", err), false
		}
		if h.ID != id || !h.Response {
			return fmt.Sprintf("DNS message with id %d, response %v", h.ID, h.Response), false
		}
		_ = p.SkipAllQuestions()
		answers, _ := p.AllAnswers()
		return fmt.Sprintf("DNS answer (%s, %d records)", h.RCode, len(answers)), true
	}
}

// probeDNS sends the case's query on one UDP socket or TCP connection:
// alone, or after s.First's (answered first, or in the same write with
// s.Together), with its TCP length prefix in a segment of its own with
// s.Split.
func probeDNS(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	var q1 []byte
	var id1 uint16
	if s.First != "" {
		first := *s
		first.Name = s.First
		var err error
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
	c, ok := connect(ctx, env, pr, netw)
	if !ok {
		return
	}
	defer c.Close()
	frame := func(q []byte) []byte {
		if !s.OverTCP {
			return q
		}
		return pktbuild.TCPDNS(q)
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
		switch {
		case q1 != nil:
			what += " to the second query"
		case s.OverTCP:
			what += " over TCP"
		}
		pr.Outcome, pr.Detail = Delivered, what
		return
	}
}

func probeTLS(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	// The deadline is for the ClientHello's fate: once the server's answer
	// starts arriving, its crypto may take longer on a loaded machine.
	c, ok := connect(ctx, env, pr, "tcp")
	if !ok {
		return
	}
	defer c.Close()
	var ac net.Conn = &answerConn{Conn: c}
	if s.Records > 1 {
		ac = &recordSplitter{Conn: ac, n: s.Records}
	}
	tc := tls.Client(ac, &tls.Config{ServerName: s.SNI, InsecureSkipVerify: true}) // the server's certificate is a throwaway
	if err := tc.HandshakeContext(ctx); err != nil {
		if errors.Is(err, io.EOF) {
			pr.Outcome, pr.Detail = Rejected, "TLS handshake: connection closed by peer"
			return
		}
		classify(err, env, "TLS handshake", pr)
		return
	}
	pr.Outcome, pr.Detail = Delivered, "TLS handshake completed ("+tls.VersionName(tc.ConnectionState().Version)+")"
}

// answerConn extends the deadline once the first answer bytes arrive.
type answerConn struct {
	net.Conn
	answered bool
}

func (a *answerConn) Read(b []byte) (int, error) {
	n, err := a.Conn.Read(b)
	if n > 0 && !a.answered {
		a.answered = true
		_ = a.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return n, err
}

func probeHTTP(ctx context.Context, s *Send, env *probeEnv, pr *Probe) {
	c, ok := connect(ctx, env, pr, "tcp")
	if !ok {
		return
	}
	defer c.Close()
	if _, err := io.WriteString(c, httpGet(s.Host, s.Path, true)); err != nil {
		classify(err, env, "send request", pr)
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		classify(err, env, "wait for response", pr)
		return
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		pr.Outcome, pr.Detail = Errored, "unexpected response: "+line
		return
	}
	pr.Outcome, pr.Detail = Delivered, "HTTP response: "+line
}

// probeICMP sends one echo request on a raw socket and waits for the echo
// reply, or for an ICMP error quoting the request.
func probeICMP(s *Send, env *probeEnv, pr *Probe) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := int(binary.BigEndian.Uint16(idb[:])&0x7fff) + 1
	netw, laddr, proto := "ip4:icmp", "0.0.0.0", unix.IPPROTO_ICMP
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if env.dst.Is6() {
		netw, laddr, proto, typ = "ip6:ipv6-icmp", "::", unix.IPPROTO_ICMPV6, ipv6.ICMPTypeEchoRequest
	}
	pr.Proto = uint8(proto)
	pr.Dst = netip.AddrPortFrom(env.dst, uint16(id))
	pr.Src = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(id))
	if env.dst.Is6() {
		pr.Src = netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(id))
	}
	if env.src.IsValid() {
		laddr = env.src.String()
		pr.Src = netip.AddrPortFrom(env.src, uint16(id))
	}
	c, err := icmp.ListenPacket(netw, laddr)
	if err != nil {
		pr.Outcome, pr.Detail = Errored, fmt.Sprintf("open raw ICMP socket: %v", err)
		return
	}
	defer c.Close()
	body := []byte("qguard-test")
	m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: body}}
	b, err := m.Marshal(nil) // IPv6: the kernel fills in the checksum
	if err != nil {
		pr.Outcome, pr.Detail = Errored, err.Error()
		return
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: env.dst.AsSlice()}); err != nil {
		classify(err, env, "send echo request", pr)
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(env.timeout))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			classify(err, env, "wait for echo reply", pr)
			return
		}
		rm, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		switch body := rm.Body.(type) {
		case *icmp.Echo:
			if body.ID == id && (rm.Type == ipv4.ICMPTypeEchoReply || rm.Type == ipv6.ICMPTypeEchoReply) {
				pr.Outcome, pr.Detail = Delivered, "echo reply"
				return
			}
		case *icmp.DstUnreach:
			if quotesEcho(body.Data, id) {
				pr.Outcome, pr.Detail = Rejected, fmt.Sprintf("ICMP destination unreachable (code %d)", rm.Code)
				return
			}
		}
	}
}

// quotesEcho reports whether an ICMP error's quoted datagram is our echo
// request with identifier id.
func quotesEcho(d []byte, id int) bool {
	if len(d) < 1 {
		return false
	}
	off := 40
	if d[0]>>4 == 4 {
		off = int(d[0]&0x0f) * 4
	}
	return len(d) >= off+6 && int(binary.BigEndian.Uint16(d[off+4:])) == id
}

// warmUp pings the server from the client over both families until it
// answers, so neighbour discovery and link bring-up never count against a
// case's timeout.
func warmUp(t *topo.Topology) error {
	for _, a := range [][2]netip.Addr{{t.ClientIP4, t.ServerIP4}, {t.ClientIP6, t.ServerIP6}} {
		dst := a[1]
		env := &probeEnv{src: a[0], dst: dst, timeout: 200 * time.Millisecond}
		var pr Probe
		for i := 0; i < 25 && pr.Outcome != Delivered; i++ {
			if err := t.Client.Do(func() error {
				probeICMP(&Send{Kind: KindICMP}, env, &pr)
				return nil
			}); err != nil {
				return err
			}
		}
		if pr.Outcome != Delivered {
			return fmt.Errorf("warm up: ping %s from the client: %s", dst, pr.Detail)
		}
	}
	return nil
}

// setLocal records the connected socket's real source address (the kernel
// chose it when the probe did not bind one).
func setLocal(pr *Probe, c net.Conn) {
	switch a := c.LocalAddr().(type) {
	case *net.TCPAddr:
		pr.Src = netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
	case *net.UDPAddr:
		pr.Src = netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
	}
}
