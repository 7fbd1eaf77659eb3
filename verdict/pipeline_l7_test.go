package verdict

import (
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/packet"
)

// exampleL7Policy is the part of examples/qguard.yaml that showed the
// defect: a dns rule ahead of a whole-flow accept for ports 8000-8100.
func exampleL7Policy(t *testing.T, extra ...Rule) *Compiled {
	t.Helper()
	rules := append([]Rule{
		{Name: "no-ads", Match: Match{DNS: []string{"*.ads.example", "tracker.example"}}, Action: ActionDrop},
		{Name: "internal-only", Match: Match{Src: pfx("198.18.0.0/15", "2001:db8::/32"),
			DstPorts: ports(PortRange{Lo: 8000, Hi: 8100})}, Action: ActionAccept, Flow: true},
	}, extra...)
	return mustCompile(t, &Policy{Default: ActionAccept, Rules: rules})
}

// TestDNSRuleOnlyOnDNSPorts: a dns matcher does not keep flows to other
// ports waiting; the rule after it decides their first packet.
func TestDNSRuleOnlyOnDNSPorts(t *testing.T) {
	c := exampleL7Policy(t)
	for _, fam := range [][2]string{{tc4, ts4}, {tc6, ts6}} {
		p := NewPipeline(c, nil)
		syn := tcp(fam[0], fam[1], 40000, 8080, nil)
		d := decide(p, syn, nil)
		if d.Rule != 1 || d.Action != ActionAccept || !d.Offload {
			t.Fatalf("%s: SYN to 8080: %+v, want internal-only with offload", fam[0], d)
		}
		// The echo payload would have looked like a DNS length prefix
		// asking for more ("pi" = 0x7069 bytes).
		d = decide(p, tcp(fam[0], fam[1], 40000, 8080, []byte("ping\n")), nil)
		if d.Rule != 1 || !d.Cached {
			t.Errorf("%s: data to 8080: %+v", fam[0], d)
		}
		// DNS over TCP to port 53: the SYN waits, the query decides.
		if d = decide(p, tcp(fam[0], fam[1], 40001, 53, nil), nil); d.Rule != RulePending {
			t.Errorf("%s: SYN to 53: %+v, want pending", fam[0], d)
		}
		d = decide(p, tcp(fam[0], fam[1], 40001, 53, pktbuild.TCPDNS(tDNS("www.ads.example"))), nil)
		if d.Rule != 0 || d.Action != ActionDrop {
			t.Errorf("%s: ads query over tcp/53: %+v, want no-ads drop", fam[0], d)
		}
		d = decide(p, udp(fam[0], fam[1], 40002, 53, tDNS("tracker.example")), nil)
		if d.Rule != 0 || d.Action != ActionDrop {
			t.Errorf("%s: tracker query over udp/53: %+v", fam[0], d)
		}
		// A DNS message to another port is not DNS to the rule.
		d = decide(p, udp(fam[0], fam[1], 40003, 5353, tDNS("tracker.example")), nil)
		if d.Rule != RuleDefault {
			t.Errorf("%s: query to 5353: %+v, want default", fam[0], d)
		}
	}
	// A rule with dports of its own says which ports carry DNS.
	c = mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "mdns", Match: Match{DstPorts: ports(PortRange{Lo: 5353, Hi: 5353}), DNS: []string{"*.local"}}, Action: ActionDrop},
	}})
	p := NewPipeline(c, nil)
	if d := decide(p, udp(tc4, "224.0.0.251", 5353, 5353, tDNS("printer.local")), nil); d.Rule != 0 {
		t.Errorf("mdns query: %+v", d)
	}
	if d := decide(p, udp(tc4, ts4, 5353, 53, tDNS("printer.local")), nil); d.Rule != RuleDefault {
		t.Errorf("query to 53 with dport 5353 rule: %+v", d)
	}
	if tr := p.Trace(udp(tc4, ts4, 1, 53, tDNS("a.local")).raw(), nil); !strings.Contains(tr.String(), "dport     no match 53 in [5353]\n") {
		t.Errorf("trace:\n%s", tr)
	}
}

// TestL7NotProtocolRulesOutAtOnce: a flow whose first data is not TLS,
// HTTP or DNS stops waiting for those names on that packet, and later
// packets of the flow cannot bring the rules back.
func TestL7NotProtocolRulesOutAtOnce(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionDrop, Rules: []Rule{
		{Name: "tls-bad", Match: Match{SNI: []string{"*.bad.example"}}, Action: ActionDrop},
		{Name: "http", Match: Match{HTTPHost: []string{"api.example"}}, Action: ActionReject},
		{Name: "payload", Match: Match{Payload: [][]byte{[]byte("attack")}}, Action: ActionDrop},
		{Name: "internal-only", Match: Match{DstPorts: ports(PortRange{Lo: 8000, Hi: 8100})}, Action: ActionAccept, Flow: true},
	}})
	p := NewPipeline(c, nil)
	// The handshake waits: any of the L7 rules could still match.
	if d := decide(p, tcp(tc4, ts4, 40000, 8080, nil), nil); d.Rule != RulePending {
		t.Fatalf("SYN: %+v", d)
	}
	d := decide(p, tcp(tc4, ts4, 40000, 8080, []byte("ping\n")), nil)
	if d.Rule != 3 || d.Action != ActionAccept || !d.Offload || d.Cached {
		t.Fatalf("first data: %+v, want internal-only with offload", d)
	}
	if d = decide(p, tcp(tc4, ts4, 40000, 8080, nil).reply(), nil); d.Rule != 3 || !d.Cached {
		t.Errorf("reply: %+v", d)
	}

	// A cut ClientHello keeps waiting (bounded); a following non-TLS
	// segment of an undecided flow cannot revive the SNI rule.
	p = NewPipeline(mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "tls-bad", Match: Match{SNI: []string{"*.bad.example"}}, Action: ActionDrop},
		{Name: "http", Match: Match{HTTPHost: []string{"api.example"}}, Action: ActionReject},
	}}), nil)
	hello := tHello("www.bad.example")
	a := tcp(tc6, ts6, 5, 443, hello[:20])
	a.seq = 1000
	b := tcp(tc6, ts6, 5, 443, hello[20:])
	b.seq = 1020
	if d = decide(p, a, nil); d.Rule != RulePending {
		t.Fatalf("cut hello: %+v", d)
	}
	if d = decide(p, b, nil); d.Rule != 0 {
		t.Fatalf("rest of hello: %+v", d)
	}
	// HTTP: "GET" needs more; the SNI rule is out after the first data
	// packet, so a ClientHello arriving later in the stream is not read.
	if d = decide(p, tcp(tc6, ts6, 6, 80, []byte("GET")), nil); d.Rule != RulePending {
		t.Fatalf("partial request: %+v", d)
	}
	if got := p.flows.Stats().HelloFull; got != 0 {
		t.Errorf("hello buffers full: %d", got)
	}
	if d = decide(p, tcp(tc6, ts6, 6, 80, hello), nil); d.Rule != RuleDefault {
		t.Errorf("late ClientHello in a flow that began otherwise: %+v, want default", d)
	}
}

// TestRejectReplyDirection: the reset the kernel sends for a rejected flow
// travels the flow's reply direction and must pass the cached decision
// (output hook steering); other reply packets of a rejected or dropped
// flow are dropped.
func TestRejectReplyDirection(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "no-9100", Match: Match{Protos: []uint8{packet.ProtoTCP, packet.ProtoUDP}, DstPorts: ports(PortRange{Lo: 9100, Hi: 9100})}, Action: ActionReject, Flow: true},
		{Name: "drop-9101", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 9101, Hi: 9101})}, Action: ActionDrop},
	}})
	for _, fam := range [][2]string{{tc4, ts4}, {tc6, ts6}} {
		p := NewPipeline(c, nil)
		syn := tcp(fam[0], fam[1], 40000, 9100, nil)
		if d := decide(p, syn, nil); d.Action != ActionReject || d.Rule != 0 || d.Cached {
			t.Fatalf("%s: SYN: %+v", fam[0], d)
		}
		rst := syn.reply()
		rst.flags = packet.TCPRst | packet.TCPAck
		d := decide(p, rst, nil)
		if d.Action != ActionAccept || d.Rule != 0 || !d.Cached || d.Offload {
			t.Errorf("%s: the kernel's reset: %+v, want accepted, not offloaded", fam[0], d)
		}
		// The initiator's retransmission is still rejected.
		if d = decide(p, syn, nil); d.Action != ActionReject || !d.Cached {
			t.Errorf("%s: SYN again: %+v", fam[0], d)
		}
		// Anything else from the responder's side is dropped, not
		// answered.
		synack := syn.reply()
		synack.flags = packet.TCPSyn | packet.TCPAck
		if d = decide(p, synack, nil); d.Action != ActionDrop || d.Offload {
			t.Errorf("%s: SYN-ACK of a rejected flow: %+v", fam[0], d)
		}
		u := udp(fam[0], fam[1], 40000, 9100, []byte("x"))
		decide(p, u, nil)
		if d = decide(p, u.reply(), nil); d.Action != ActionDrop {
			t.Errorf("%s: udp reply of a rejected flow: %+v", fam[0], d)
		}
		// A dropped flow stays dropped both ways, reset or not.
		dsyn := tcp(fam[0], fam[1], 40001, 9101, nil)
		decide(p, dsyn, nil)
		drst := dsyn.reply()
		drst.flags = packet.TCPRst
		if d = decide(p, drst, nil); d.Action != ActionDrop || !d.Cached {
			t.Errorf("%s: reset of a dropped flow: %+v", fam[0], d)
		}
	}
	// The default action rejects the same way, and a reset met first (its
	// flow entry lost) with conntrack saying reply is judged from the
	// initiator's side and passes too.
	c = mustCompile(t, &Policy{Default: ActionReject})
	p := NewPipeline(c, nil)
	rst := tcp(tc4, ts4, 40000, 9100, nil).reply()
	rst.flags = packet.TCPRst | packet.TCPAck
	d := decide(p, rst, &Meta{HasCT: true, CTState: CTEstablishedReply})
	if d.Action != ActionAccept || d.Rule != RuleDefault {
		t.Errorf("reset met first: %+v", d)
	}
	raw := rst.raw()
	if n := testing.AllocsPerRun(100, func() { p.Decide(raw, nil, &d) }); n != 0 || d.Action != ActionAccept {
		t.Errorf("reset of a rejected flow: %v allocs, %+v", n, d)
	}
}
