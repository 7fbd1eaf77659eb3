package verdict

import (
	"strconv"
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/packet"
)

// The evasions of issue 13, each against the policy it was found with:
// DNS names, TLS server names and HTTP hosts under blocked.test are
// blocked, UDP port 9002 is dropped, everything else is accepted. Every
// technique is tried with a blocked name (must not pass) and an allowed one
// (must pass: no over-blocking).

func evasionPolicy(t *testing.T) *Compiled {
	t.Helper()
	return mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "dns", Match: Match{DNS: []string{"*.blocked.test", "blocked.test"}}, Action: ActionDrop},
		{Name: "sni", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop},
		{Name: "http", Match: Match{HTTPHost: []string{"*.blocked.test"}}, Action: ActionReject},
		{Name: "udp9002", Match: Match{Protos: []uint8{packet.ProtoUDP}, DstPorts: ports(PortRange{Lo: 9002, Hi: 9002})}, Action: ActionDrop},
	}})
}

// conn is the client side of one TCP connection: SYN, then data segments
// with consecutive sequence numbers.
type conn struct {
	p            *Pipeline
	src, dst     string
	sport, dport uint16
	seq          uint32
}

func dial(p *Pipeline, src, dst string, sport, dport uint16) *conn {
	c := &conn{p: p, src: src, dst: dst, sport: sport, dport: dport, seq: 1000}
	syn := tcp(src, dst, sport, dport, nil)
	syn.seq = c.seq
	decide(p, syn, nil)
	return c
}

// send sends one segment and returns its decision.
func (c *conn) send(b []byte) Decision {
	seg := tcp(c.src, c.dst, c.sport, c.dport, b)
	seg.seq = c.seq
	c.seq += uint32(len(b))
	return decide(c.p, seg, nil)
}

// ack sends an empty ACK.
func (c *conn) ack() Decision {
	seg := tpkt{src: c.src, dst: c.dst, proto: packet.ProtoTCP, sport: c.sport, dport: c.dport, flags: packet.TCPAck, seq: c.seq}
	return decide(c.p, seg, nil)
}

// sendAll sends the segments and returns the decision of each.
func (c *conn) sendAll(segs ...[]byte) []Decision {
	var ds []Decision
	for _, s := range segs {
		ds = append(ds, c.send(s))
	}
	return ds
}

// passed reports whether every decision lets the data through.
func passed(ds []Decision) bool {
	for _, d := range ds {
		if d.Action != ActionAccept {
			return false
		}
	}
	return true
}

func blockedOrAllowed(t *testing.T, name string, blocked bool, ds []Decision) {
	t.Helper()
	if got := passed(ds); got == blocked {
		var b strings.Builder
		for i, d := range ds {
			b.WriteString("\n  ")
			b.WriteString(strconv.Itoa(i))
			b.WriteString(": ")
			b.WriteString(d.Action.String())
			b.WriteString(" rule ")
			b.WriteString(strconv.Itoa(d.Rule))
		}
		if blocked {
			t.Errorf("%s: passed, want blocked:%s", name, b.String())
		} else {
			t.Errorf("%s: blocked, want passed:%s", name, b.String())
		}
	}
}

func TestEvasionDNS(t *testing.T) {
	c := evasionPolicy(t)
	fams := [][2]string{{tc4, ts4}, {tc6, ts6}}
	for _, blocked := range []bool{true, false} {
		name := "www.blocked.test"
		if !blocked {
			name = "www.allowed.test"
		}
		for fi, fam := range fams {
			p := NewPipeline(c, nil)
			sport := uint16(40000 + fi*100)
			udpQ := func(payload []byte) Decision {
				return decide(p, udp(fam[0], fam[1], sport, 53, payload), nil)
			}
			// UDP: a harmless query first, then the name, on one socket.
			udpQ(pktbuild.DNSQuery(1, "harmless.test"))
			blockedOrAllowed(t, "udp second query "+name, blocked, []Decision{udpQ(pktbuild.DNSQuery(2, name))})
			// UDP: one junk byte first.
			sport++
			udpQ([]byte{0})
			blockedOrAllowed(t, "udp after junk "+name, blocked, []Decision{udpQ(pktbuild.DNSQuery(3, name))})
			// UDP: the name as the second question of one message.
			sport++
			two := pktbuild.DNSQuery(4, "harmless.test", name)
			blockedOrAllowed(t, "udp second question "+name, blocked, []Decision{udpQ(two)})

			// TCP: a second query in the next segment.
			k := dial(p, fam[0], fam[1], sport+1, 53)
			ds := k.sendAll(pktbuild.TCPDNS(pktbuild.DNSQuery(1, "harmless.test")), pktbuild.TCPDNS(pktbuild.DNSQuery(2, name)))
			blockedOrAllowed(t, "tcp next segment "+name, blocked, ds)
			if !passed(ds[:1]) {
				t.Errorf("tcp: harmless first query blocked: %+v", ds[0])
			}
			// TCP: two queries in one segment.
			k = dial(p, fam[0], fam[1], sport+2, 53)
			ds = k.sendAll(append(pktbuild.TCPDNS(pktbuild.DNSQuery(1, "harmless.test")), pktbuild.TCPDNS(pktbuild.DNSQuery(2, name))...))
			blockedOrAllowed(t, "tcp same segment "+name, blocked, ds)
			// TCP: the length prefix in a segment of its own.
			k = dial(p, fam[0], fam[1], sport+3, 53)
			m := pktbuild.TCPDNS(pktbuild.DNSQuery(1, name))
			blockedOrAllowed(t, "tcp prefix alone "+name, blocked, k.sendAll(m[:2], m[2:]))
			// TCP: small segments (within the L7 window), after a first query.
			k = dial(p, fam[0], fam[1], sport+4, 53)
			segs := append([][]byte{pktbuild.TCPDNS(pktbuild.DNSQuery(1, "harmless.test"))}, splitEvery(m, 6)...)
			blockedOrAllowed(t, "tcp small segments "+name, blocked, k.sendAll(segs...))
			// TCP: a message cut across segments, the next one starting in
			// the same segment as its end.
			k = dial(p, fam[0], fam[1], sport+5, 53)
			stream := append(pktbuild.TCPDNS(pktbuild.DNSQuery(1, "harmless.test")), m...)
			blockedOrAllowed(t, "tcp straddling "+name, blocked, k.sendAll(stream[:20], stream[20:40], stream[40:]))
		}
	}
}

// TestEvasionDNSPointers: compression pointers forwards (dnsmasq follows
// them) and backwards, both resolved to the name they spell.
func TestEvasionDNSPointers(t *testing.T) {
	c := evasionPolicy(t)
	p := NewPipeline(c, nil)
	// Question name: "www" + pointer forward to "blocked.test" placed after
	// the question.
	fwd := pktbuild.DNSQuery(1)
	fwd[5] = 1
	tail := len(fwd) + 4 + 2 + 4 // labels "www", pointer, qtype/qclass
	fwd = append(fwd, 3, 'w', 'w', 'w', 0xc0|byte(tail>>8), byte(tail), 0, 1, 0, 1)
	fwd = append(fwd, pktbuild.DNSName("blocked.test")...)
	if d := decide(p, udp(tc4, ts4, 1, 53, fwd), nil); d.Action != ActionDrop {
		t.Errorf("forward pointer: %+v", d)
	}
	if d := decide(p, tcp(tc4, ts4, 2, 53, pktbuild.TCPDNS(fwd)), nil); d.Action != ActionDrop {
		t.Errorf("forward pointer over tcp: %+v", d)
	}
	// A pointer loop cannot be read by anyone: the policy decides (drop).
	loop := pktbuild.DNSQuery(1)
	loop[5] = 1
	loop = append(loop, 0xc0, 14, 0xc0, 12, 0, 1, 0, 1)
	if d := decide(p, udp(tc4, ts4, 3, 53, loop), nil); d.Action != ActionDrop || d.Rule != RuleUndecided {
		t.Errorf("pointer loop: %+v", d)
	}
	if d := decide(p, udp(tc4, ts4, 4, 53, pktbuild.DNSQuery(1, "fine.test")), nil); d.Action != ActionAccept {
		t.Errorf("allowed: %+v", d)
	}
}

// TestEvasionIPv6ExtHeaders: a long extension header chain does not hide
// the transport header from port rules or the DNS rule.
func TestEvasionIPv6ExtHeaders(t *testing.T) {
	c := evasionPolicy(t)
	p := NewPipeline(c, nil)
	var d Decision
	for _, n := range []int{9, 20, 200} {
		exts := pktbuild.DstOpts(n)
		p.Decide(pktbuild.IPv6{Proto: packet.ProtoUDP, Exts: exts}.Build(pktbuild.UDP(40000, 9002, []byte("x"))), nil, &d)
		if d.Action != ActionDrop || d.Rule != 3 {
			t.Errorf("%d headers, udp/9002: %+v", n, d)
		}
		p.Decide(pktbuild.IPv6{Proto: packet.ProtoUDP, Exts: exts}.Build(pktbuild.UDP(40001, 53, pktbuild.DNSQuery(1, "a.blocked.test"))), nil, &d)
		if d.Action != ActionDrop || d.Rule != 0 {
			t.Errorf("%d headers, blocked query: %+v", n, d)
		}
		p.Decide(pktbuild.IPv6{Proto: packet.ProtoUDP, Exts: exts}.Build(pktbuild.UDP(40002, 53, pktbuild.DNSQuery(1, "a.allowed.test"))), nil, &d)
		if d.Action != ActionAccept {
			t.Errorf("%d headers, allowed query: %+v", n, d)
		}
	}
	// What cannot be decoded does not pass a policy that drops.
	bad := pktbuild.IPv6{Proto: packet.ProtoUDP, Exts: []pktbuild.Ext{pktbuild.NewExt(packet.ProtoDstOpts, pktbuild.Opts6(1)), pktbuild.NewExt(packet.ProtoHopByHop, pktbuild.Opts6(1))}}.Build(pktbuild.UDP(1, 9002, nil))
	p.Decide(bad, nil, &d)
	if d.Action != ActionDrop || d.Rule != RuleInvalid {
		t.Errorf("undecodable: %+v", d)
	}
}

// TestInvalidDefault: policy.invalid unset drops when any rule could drop
// or reject, and accepts only under a policy that accepts everything.
func TestInvalidDefault(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want Action
	}{
		{Policy{Default: ActionAccept}, ActionAccept},
		{Policy{Default: ActionAccept, Rules: []Rule{{Name: "a", Action: ActionAccept, Mark: 1, SetMark: true}}}, ActionAccept},
		{Policy{Default: ActionDrop}, ActionDrop},
		{Policy{Default: ActionReject}, ActionDrop},
		{Policy{Default: ActionAccept, Rules: []Rule{{Name: "d", Action: ActionDrop}}}, ActionDrop},
		{Policy{Default: ActionAccept, Rules: []Rule{{Name: "r", Action: ActionReject}}}, ActionDrop},
		{Policy{Default: ActionAccept, Rules: []Rule{{Name: "l", Action: ActionAccept, RateLimit: &RateLimit{Rate: Rate{1, 1e9}}}}}, ActionDrop},
		{Policy{Default: ActionDrop, Invalid: ActionAccept}, ActionAccept},
	} {
		c := mustCompile(t, &tc.p)
		if got := c.InvalidAction(); got != tc.want {
			t.Errorf("%+v: invalid %s, want %s", tc.p, got, tc.want)
		}
		var d Decision
		NewPipeline(c, nil).Decide([]byte{0x60, 0}, nil, &d)
		if d.Action != tc.want || d.Rule != RuleInvalid {
			t.Errorf("%+v: %+v", tc.p, d)
		}
	}
}

func TestEvasionTLS(t *testing.T) {
	c := evasionPolicy(t)
	for _, blocked := range []bool{true, false} {
		host := "www.blocked.test"
		if !blocked {
			host = "www.allowed.test"
		}
		p := NewPipeline(c, nil)
		hs := pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt(host), pktbuild.TLSExt(21, make([]byte, 300))))
		// Two records in one segment, cut at every offset of the message.
		for cut := 1; cut < len(hs); cut += 7 {
			k := dial(p, tc4, ts4, uint16(1000+cut), 443)
			two := append(pktbuild.Records(hs[:cut], 1<<14), pktbuild.Records(hs[cut:], 1<<14)...)
			blockedOrAllowed(t, "two records cut at "+itoa(cut)+" "+host, blocked, []Decision{k.send(two)})
		}
		// Empty ACKs before the hello do not use up the L7 window.
		k := dial(p, tc6, ts6, 5000, 443)
		for i := 0; i < 20; i++ {
			if d := k.ack(); d.Action != ActionAccept || d.Rule != RulePending {
				t.Fatalf("empty ack %d: %+v", i, d)
			}
		}
		blockedOrAllowed(t, "after empty ACKs "+host, blocked, []Decision{k.send(pktbuild.Records(hs, 1<<14))})
		// Segments out of order: the later one is dropped until the
		// earlier one has arrived, then the hello is judged in order.
		k = dial(p, tc4, ts4, 5001, 443)
		rec := pktbuild.Records(hs, 1<<14)
		late := tcp(tc4, ts4, 5001, 443, rec[100:])
		late.seq = k.seq + 100
		if d := decide(p, late, nil); d.Action != ActionDrop {
			t.Errorf("segment after a hole: %+v", d)
		}
		blockedOrAllowed(t, "reordered "+host, blocked, k.sendAll(rec[:100], rec[100:]))
	}
}

func TestEvasionHTTP(t *testing.T) {
	c := evasionPolicy(t)
	req := func(host string) []byte { return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nAccept: */*\r\n\r\n") }
	post := func(host, body string) []byte {
		return []byte("POST /f HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body)
	}
	chunked := []byte("POST /c HTTP/1.1\r\nHost: ok.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n")
	for _, blocked := range []bool{true, false} {
		host := "www.blocked.test"
		if !blocked {
			host = "www.allowed.test"
		}
		p := NewPipeline(c, nil)
		port := uint16(2000)
		try := func(name string, segs ...[]byte) {
			t.Helper()
			port++
			blockedOrAllowed(t, name+" "+host, blocked, dial(p, tc4, ts4, port, 80).sendAll(segs...))
		}
		r := req(host)
		try("first request", r)
		try("keep-alive second request", req("ok.test"), r)
		try("pipelined", append(req("ok.test"), r...))
		try("host in the second segment", r[:20], r[20:])
		try("small segments", splitEvery(r, 10)...)
		try("empty lines first", append([]byte("\r\n\r\n"), r...))
		try("absolute form", []byte("GET http://"+host+"/x HTTP/1.1\r\nHost: ok.test\r\n\r\n"))
		try("after a body", post("ok.test", strings.Repeat("b", 3000)), r)
		try("after a body looking like a request", post("ok.test", string(req("ok.test"))), r)
		try("after a chunked body", chunked, r)
		hl := headEnd(chunked, 0)
		try("after a chunked body, byte by byte", append(append([][]byte{chunked[:hl]}, splitEvery(chunked[hl:], 1)...), r)...)
		try("third request", req("ok.test"), req("ok.test"), r)
		// Any token is a method to a server.
		try("lowercase method", []byte("get / HTTP/1.1\r\nHost: "+host+"\r\n\r\n"))
		try("unknown method after a request", req("ok.test"), []byte("PROPFIND / HTTP/1.1\r\nHost: "+host+"\r\n\r\n"))
		// Bare LF line ends (RFC 9112 2.2 lets servers accept them).
		try("bare LF", []byte("GET / HTTP/1.1\nHost: "+host+"\n\n"))
		// The blocked request hidden in what a lax parser takes as a body.
		if blocked {
			port++
			k := dial(p, tc4, ts4, port, 80)
			smuggle := []byte("POST / HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
			ds := k.sendAll(smuggle, r)
			if passed(ds[1:]) {
				t.Errorf("request after ambiguous framing passed: %+v", ds)
			}
		}
	}
}

// TestEvasionHTTPTunnel: after CONNECT (or Upgrade) the connection may carry
// another protocol; the request that opened it was judged, and data that
// starts like a request is still judged as one.
func TestEvasionHTTPTunnel(t *testing.T) {
	c := evasionPolicy(t)
	p := NewPipeline(c, nil)
	k := dial(p, tc4, ts4, 3000, 80)
	ds := k.sendAll([]byte("CONNECT ok.test:443 HTTP/1.1\r\nHost: ok.test:443\r\n\r\n"), tHello("x.blocked.test"), []byte("more"))
	if !passed(ds) {
		t.Errorf("tunnel to an allowed host: %+v", ds)
	}
	k = dial(p, tc4, ts4, 3001, 80)
	ds = k.sendAll([]byte("CONNECT ok.test:443 HTTP/1.1\r\n\r\n"), req2("x.blocked.test"))
	if passed(ds) {
		t.Errorf("request after a refused CONNECT: %+v", ds)
	}
	// A tunnelled protocol whose first bytes look like a method (SSH).
	k = dial(p, tc4, ts4, 3003, 80)
	ds = k.sendAll([]byte("CONNECT ok.test:22 HTTP/1.1\r\n\r\n"), []byte("SSH-"), []byte("2.0-OpenSSH_9.6\r\n"), []byte("\x00\x00\x01\x0c"))
	if !passed(ds) {
		t.Errorf("ssh through CONNECT: %+v", ds)
	}
	k = dial(p, tc4, ts4, 3002, 80)
	if d := k.send([]byte("CONNECT x.blocked.test:443 HTTP/1.1\r\n\r\n")); d.Action == ActionAccept {
		t.Errorf("CONNECT to a blocked host: %+v", d)
	}
}

func req2(host string) []byte { return []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n") }

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		c := min(n, len(b))
		out = append(out, b[:c])
		b = b[c:]
	}
	return out
}

// TestPerMessageFlowsNotOffloaded: a rule with flow: true that matched a
// message of a flow still under inspection does not hand the flow to the
// kernel, where its later messages would pass unseen.
func TestPerMessageFlowsNotOffloaded(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionDrop, Rules: []Rule{
		{Name: "dns", Match: Match{DNS: []string{"*.blocked.test"}}, Action: ActionDrop},
		{Name: "all", Action: ActionAccept, Flow: true},
	}})
	p := NewPipeline(c, nil)
	d := decide(p, udp(tc4, ts4, 1, 53, pktbuild.DNSQuery(1, "ok.test")), nil)
	if d.Action != ActionAccept || d.Offload {
		t.Errorf("allowed query: %+v", d)
	}
	if d = decide(p, udp(tc4, ts4, 1, 53, pktbuild.DNSQuery(2, "a.blocked.test")), nil); d.Action != ActionDrop {
		t.Errorf("blocked query: %+v", d)
	}
	if d = decide(p, udp(tc4, ts4, 1, 53, nil).reply(), nil); d.Action != ActionAccept || d.Offload {
		t.Errorf("answer: %+v", d)
	}
	// Flows the DNS rule does not look at are offloaded as before.
	if d = decide(p, udp(tc4, ts4, 1, 54, []byte("x")), nil); !d.Offload {
		t.Errorf("udp/54: %+v", d)
	}
}

// TestDNSQuestionBound: every question of a message is judged, up to
// maxQuestions; a message with more is left to the policy, so that a
// datagram cannot buy thousands of rule walks.
func TestDNSQuestionBound(t *testing.T) {
	p := NewPipeline(evasionPolicy(t), nil)
	names := make([]string, maxQuestions)
	for i := range names {
		names[i] = "ok" + itoa(i) + ".test"
	}
	if d := decide(p, udp(tc4, ts4, 1, 53, pktbuild.DNSQuery(1, names...)), nil); d.Action != ActionAccept {
		t.Errorf("%d allowed questions: %+v", len(names), d)
	}
	names[len(names)-1] = "x.blocked.test"
	if d := decide(p, udp(tc4, ts4, 1, 53, pktbuild.DNSQuery(1, names...)), nil); d.Action != ActionDrop || d.Rule != 0 {
		t.Errorf("blocked last question: %+v", d)
	}
	names[len(names)-1] = "ok.test"
	if d := decide(p, udp(tc4, ts4, 1, 53, pktbuild.DNSQuery(1, append(names, "more.test")...)), nil); d.Action != ActionDrop || d.Rule != RuleUndecided {
		t.Errorf("%d questions: %+v", len(names)+1, d)
	}
}

// TestSeenNamesNotStale: a packet served from the flow table reads no name,
// so SeenNames does not report the previous packet's.
func TestSeenNamesNotStale(t *testing.T) {
	p := NewPipeline(evasionPolicy(t), nil)
	decide(p, udp(tc4, ts4, 1, 53, pktbuild.DNSQuery(1, "a.allowed.test")), nil)
	if dns, _, _ := p.SeenNames(); string(dns) != "a.allowed.test" {
		t.Fatalf("dns %q", dns)
	}
	decide(p, udp(tc4, ts4, 2, 9003, []byte("x")), nil)
	if d := decide(p, udp(tc4, ts4, 2, 9003, []byte("y")), nil); !d.Cached {
		t.Fatalf("not cached: %+v", d)
	}
	if dns, sni, host := p.SeenNames(); dns != nil || sni != nil || host != nil {
		t.Errorf("cached packet: %q %q %q", dns, sni, host)
	}
}

// TestEvasionUrgentData: a segment with urgent data reads differently at
// the server (the urgent byte leaves the stream), so a rule that needs its
// name leaves it to the policy.
func TestEvasionUrgentData(t *testing.T) {
	p := NewPipeline(evasionPolicy(t), nil)
	k := dial(p, tc4, ts4, 4000, 80)
	seg := tcp(tc4, ts4, 4000, 80, []byte("GET / HTTP/1.1\r\nHost: www.blockedX.test\r\n\r\n"))
	seg.seq, seg.flags = k.seq, packet.TCPAck|packet.TCPPsh|packet.TCPUrg
	if d := decide(p, seg, nil); d.Action != ActionDrop || d.Rule != RuleUndecided {
		t.Errorf("urgent data: %+v", d)
	}
	// A flow whose first data ruled the L7 rules out (telnet) keeps its
	// interrupts.
	k = dial(p, tc4, ts4, 4001, 23)
	if d := k.send([]byte("login\r\n")); d.Action != ActionAccept || d.Rule != RuleDefault {
		t.Fatalf("telnet: %+v", d)
	}
	seg = tcp(tc4, ts4, 4001, 23, []byte{0xff, 0xf4})
	seg.seq, seg.flags = k.seq, packet.TCPAck|packet.TCPUrg
	if d := decide(p, seg, nil); d.Action != ActionAccept {
		t.Errorf("telnet interrupt: %+v", d)
	}
}
