package verdict

import (
	"crypto/tls"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/qguard/qguard/verdict/packet"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/verdict/l7"
)

// captureQUICGo captures a quic-go client's first flight until a
// QUICHello has read its whole ClientHello.
func captureQUICGo(t *testing.T, version quic.Version, tlsConf *tls.Config) [][]byte {
	t.Helper()
	q := l7.NewQUICHello()
	n := 0
	return testutil.CaptureQUICGo(t, version, tlsConf, func(d []byte) bool {
		n++
		_, st := q.Feed(d)
		if st != l7.NeedMore && st != l7.Found {
			t.Fatalf("quic-go datagram %d: %s", n, st)
		}
		return st == l7.Found
	})
}

func quicPolicy(t *testing.T, extra ...Rule) *Compiled {
	t.Helper()
	return mustCompile(t, &Policy{Default: ActionAccept, Rules: append([]Rule{
		{Name: "no-blocked", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop},
	}, extra...)})
}

// quicDecide feeds datagrams from client port sport to UDP port dport and
// returns the decision of each.
func quicDecide(p *Pipeline, sport, dport uint16, dgrams [][]byte) []Decision {
	var ds []Decision
	for _, d := range dgrams {
		ds = append(ds, decide(p, udp(tc4, ts4, sport, dport, d), nil))
	}
	return ds
}

// TestQUICPipeline: sni rules judge QUIC Initials of real quic-go clients
// on UDP 443, v1 and v2; a blocked name is dropped from the packet that
// completes its ClientHello, whatever came before on the flow.
func TestQUICPipeline(t *testing.T) {
	c := quicPolicy(t)
	for _, version := range []quic.Version{quic.Version1, quic.Version2} {
		blocked := captureQUICGo(t, version, &tls.Config{ServerName: "www.Blocked.test", NextProtos: []string{"h3"}})
		allowed := captureQUICGo(t, version, &tls.Config{ServerName: "fine.test", NextProtos: []string{"h3"}})
		p := NewPipeline(c, nil)
		ds := quicDecide(p, 40000, 443, blocked)
		last := ds[len(ds)-1]
		if last.Rule != 0 || last.Action != ActionDrop || last.Offload {
			t.Fatalf("%s: blocked hello: %+v", version, last)
		}
		for i, d := range ds[:len(ds)-1] {
			if d.Rule != RulePending {
				t.Errorf("%s: datagram %d before the hello is complete: %+v", version, i, d)
			}
		}
		if tr := p.Trace(udp(tc4, ts4, 1, 443, blocked[0]).raw(), nil); len(blocked) == 1 && tr.Decision.Rule != 0 ||
			len(blocked) > 1 && tr.Decision.Rule != RulePending {
			t.Errorf("%s: trace of the first Initial:\n%s", version, tr)
		}
		ds = quicDecide(p, 40001, 443, allowed)
		if last := ds[len(ds)-1]; last.Rule != RuleDefault || last.Action != ActionAccept {
			t.Fatalf("%s: allowed hello: %+v", version, last)
		}

		// Junk first, then the blocked Initials: each datagram is judged.
		junk := decide(p, udp(tc4, ts4, 40002, 443, []byte("junk")), nil)
		if junk.Rule != RuleDefault {
			t.Fatalf("%s: junk: %+v", version, junk)
		}
		ds = quicDecide(p, 40002, 443, blocked)
		if last := ds[len(ds)-1]; last.Rule != 0 || last.Action != ActionDrop {
			t.Fatalf("%s: blocked after junk: %+v", version, last)
		}

		// An allowed connection, its 1-RTT packets, then a second
		// connection to a blocked name on the same 5-tuple.
		quicDecide(p, 40003, 443, allowed)
		short := append([]byte{0x40}, make([]byte, 40)...)
		if d := decide(p, udp(tc4, ts4, 40003, 443, short), nil); d.Rule != RuleDefault || !d.Cached {
			t.Fatalf("%s: 1-RTT packet: %+v", version, d)
		}
		ds = quicDecide(p, 40003, 443, blocked)
		if last := ds[len(ds)-1]; last.Rule != 0 || last.Action != ActionDrop {
			t.Fatalf("%s: second connection on the flow: %+v", version, last)
		}
		if d := decide(p, udp(tc4, ts4, 40003, 443, short), nil); d.Rule != 0 || d.Action != ActionDrop {
			t.Fatalf("%s: 1-RTT packet after the blocked connection: %+v", version, d)
		}

		// Many connections, one after the other, on one 5-tuple: each
		// gets its own L7 window.
		for i := 0; i < 2*c.l7Packets; i++ {
			ds = quicDecide(p, 40005, 443, allowed)
			for j, d := range ds {
				want := RuleDefault // a decided flow's decision holds while a hello is incomplete
				if i == 0 && j < len(ds)-1 {
					want = RulePending
				}
				if d.Rule != want {
					t.Fatalf("%s: connection %d datagram %d: %+v", version, i, j, d)
				}
			}
			decide(p, udp(tc4, ts4, 40005, 443, short), nil)
		}

		// Other ports carry QUIC only when a rule names them.
		ds = quicDecide(p, 40004, 8443, blocked)
		if last := ds[len(ds)-1]; last.Rule != RuleDefault {
			t.Fatalf("%s: blocked name to 8443 without a rule naming it: %+v", version, last)
		}
		p8443 := NewPipeline(quicPolicy(t, Rule{Name: "alt", Match: Match{Protos: []uint8{packet.ProtoUDP},
			DstPorts: ports(PortRange{Lo: 8443, Hi: 8443}), SNI: []string{"*.alt.test"}}, Action: ActionReject}), nil)
		ds = quicDecide(p8443, 40004, 8443, blocked)
		if last := ds[len(ds)-1]; last.Rule != 0 || last.Action != ActionDrop {
			t.Fatalf("%s: blocked name to 8443 with a rule naming it: %+v", version, last)
		}
	}
}

// TestQUICPipelineBuffers: a flow's QUICHello goes back to the pool when
// the client sends 1-RTT packets, and a flow whose decision is cached
// allocates nothing per packet.
func TestQUICPipelineBuffers(t *testing.T) {
	allowed := captureQUICGo(t, quic.Version1, &tls.Config{ServerName: "fine.test", NextProtos: []string{"h3"}})
	p := NewPipeline(quicPolicy(t, Rule{Name: "udp", Match: Match{Protos: []uint8{packet.ProtoUDP}}, Action: ActionAccept, Flow: true}), nil)
	ds := quicDecide(p, 40000, 443, allowed)
	if last := ds[len(ds)-1]; last.Rule != 1 || last.Offload {
		t.Fatalf("allowed: %+v (a QUIC flow is never offloaded)", last)
	}
	if n := len(p.flows.quics.free); n != 0 {
		t.Fatalf("%d free buffers while the handshake runs", n)
	}
	p.flows.quics.full.Add(2)
	if s := p.Stats().Flows; s.QUICFull != 2 {
		t.Fatalf("QUICFull %d", s.QUICFull)
	}
	short := udp(tc4, ts4, 40000, 443, append([]byte{0x40}, make([]byte, 40)...)).raw()
	var m Meta
	var d Decision
	p.Decide(short, &m, &d)
	if d.Rule != 1 || !d.Cached {
		t.Fatalf("1-RTT: %+v", d)
	}
	if n := len(p.flows.quics.free); n != 1 {
		t.Fatalf("%d free buffers after a 1-RTT packet, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { p.Decide(short, &m, &d) }); n != 0 {
		t.Errorf("1-RTT packets of a QUIC flow: %v allocs", n)
	}
	last := udp(tc4, ts4, 40000, 443, allowed[len(allowed)-1]).raw()
	if n := testing.AllocsPerRun(20, func() { p.Decide(last, &m, &d) }); n != 0 {
		t.Errorf("a retransmitted Initial: %v allocs", n)
	}
}

// TestQUICPoolSteal: when every buffer is lent, the one fed longest ago
// goes to the new flow once it is older than quicStealAge.
func TestQUICPoolSteal(t *testing.T) {
	var p quicPool
	p.init(2)
	now := int64(0)
	p.clock = func() int64 { return now }
	var e1, e2, e3 flowEntry
	e1.quic, e2.quic = p.get(&e1), p.get(&e2)
	if e1.quic == 0 || e2.quic == 0 {
		t.Fatal("no buffer")
	}
	if e3.quic = p.get(&e3); e3.quic != 0 || p.full.Load() != 1 {
		t.Fatalf("full pool lent %d", e3.quic)
	}
	now += 2 * quicStealAge
	p.feed(e1.quic, []byte("not quic"))
	if e3.quic = p.get(&e3); e3.quic == 0 || e2.quic != 0 || e1.quic == 0 {
		t.Fatalf("steal: e1 %d e2 %d e3 %d; want e2's buffer taken", e1.quic, e2.quic, e3.quic)
	}
	p.put(e1.quic)
	if i := p.get(&e2); i != e1.quic {
		t.Fatalf("freed buffer not reused: %d", i)
	}
}

// BenchmarkQUICPipeline: what QUIC inspection costs per packet through
// Decide: a 1-RTT packet of a decided flow (cached, with the Initial
// check), and a retransmitted Initial of it (opened and judged again).
func BenchmarkQUICPipeline(b *testing.B) {
	t := &testing.T{}
	allowed := captureQUICGo(t, quic.Version1, &tls.Config{ServerName: "fine.test", NextProtos: []string{"h3"}})
	if t.Failed() || len(allowed) == 0 {
		b.Fatal("no quic-go capture")
	}
	c := mustCompile(b, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "no-blocked", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop}}})
	p := NewPipeline(c, nil)
	var m Meta
	var d Decision
	for _, dg := range allowed {
		p.Decide(udp(tc4, ts4, 40000, 443, dg).raw(), &m, &d)
	}
	short := udp(tc4, ts4, 40000, 443, append([]byte{0x40}, make([]byte, 1200)...)).raw()
	last := udp(tc4, ts4, 40000, 443, allowed[len(allowed)-1]).raw()
	b.Run("1rtt-cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Decide(short, &m, &d)
		}
		if !d.Cached {
			b.Fatalf("%+v", d)
		}
	})
	b.Run("initial-rechecked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, q := range p.flows.quics.bufs {
				q.ForgetInitials() // measure opening, not the QUICMaxInitials cut-off
			}
			p.Decide(last, &m, &d)
		}
	})
}

// TestQUICPipelinePartialHello: pieces of a ClientHello that passed (as
// pending, or under an accepted flow's decision) are never completed
// behind qguard's back: not when the flow's buffer is taken by the pool,
// and not when another connection's packets end the buffer's use.
func TestQUICPipelinePartialHello(t *testing.T) {
	c := quicPolicy(t)
	blocked := captureQUICGo(t, quic.Version1, &tls.Config{ServerName: "www.blocked.test", NextProtos: []string{"h3"}})
	allowed := captureQUICGo(t, quic.Version1, &tls.Config{ServerName: "fine.test", NextProtos: []string{"h3"}})
	if len(blocked) < 2 {
		t.Fatalf("the blocked hello fits one datagram")
	}
	short := append([]byte{0x40}, make([]byte, 40)...)

	// One buffer: a second flow takes it once it is a second old.
	p := NewPipeline(c, nil)
	p.flows.quics.init(1)
	now := int64(0)
	p.flows.quics.clock = func() int64 { return now }
	if d := decide(p, udp(tc4, ts4, 41000, 443, blocked[0]), nil); d.Rule != RulePending {
		t.Fatalf("first piece: %+v", d)
	}
	now += 2 * quicStealAge
	decide(p, udp(tc4, ts4, 41001, 443, allowed[0]), nil)
	now += 2 * quicStealAge // the rest could take a buffer again
	if d := decide(p, udp(tc4, ts4, 41000, 443, blocked[1]), nil); d.Action != ActionDrop || d.Rule != RuleUndecided {
		t.Fatalf("rest of a hello whose buffer was taken: %+v, want undecided (drop)", d)
	}

	// A blocked connection found, then the allowed connection's 1-RTT
	// packets on the same 5-tuple end the buffer's use; the blocked
	// connection's retransmitted pieces get the flow's drop.
	p = NewPipeline(c, nil)
	quicDecide(p, 41002, 443, allowed)
	ds := quicDecide(p, 41002, 443, blocked)
	if last := ds[len(ds)-1]; last.Rule != 0 {
		t.Fatalf("blocked: %+v", last)
	}
	decide(p, udp(tc4, ts4, 41002, 443, short), nil)
	for i, dg := range blocked {
		if d := decide(p, udp(tc4, ts4, 41002, 443, dg), nil); d.Action != ActionDrop {
			t.Fatalf("retransmitted piece %d of the blocked hello: %+v", i, d)
		}
	}
}
