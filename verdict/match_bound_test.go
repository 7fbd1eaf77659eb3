package verdict

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/verdict/packet"
)

const (
	resolver = "198.18.3.53"
	bound4   = "203.0.113.10"
	other4   = "203.0.113.11"
)

func dnsWire(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// namesPipeline returns a pipeline whose policy drops what dst_name
// *.blocked.example names and accepts the rest, with its binding table.
func namesPipeline(t testing.TB, rules ...Rule) (*Pipeline, *names.Table) {
	t.Helper()
	tab, err := names.New(&names.Config{MinTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rules == nil {
		rules = []Rule{{Name: "no-blocked", Match: Match{DstName: []string{"*.blocked.example"}}, Action: ActionDrop}}
	}
	c, err := CompileWith(&Policy{Default: ActionAccept, Rules: rules}, &CompileOptions{Names: tab})
	if err != nil {
		t.Fatal(err)
	}
	tab.SetFilter(c.NameFilter())
	return NewPipeline(c, nil), tab
}

func resolve(t testing.TB, p *Pipeline, sport uint16, id uint16, name, addr string, ask bool) Decision {
	t.Helper()
	var d Decision
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.Id = id
	if ask {
		p.Decide(udp(tc4, resolver, sport, 53, dnsWire(t, q)).raw(), nil, &d)
		if d.Action != ActionAccept {
			t.Fatalf("query: %v", d.Action)
		}
	}
	a := new(dns.Msg)
	a.SetReply(q)
	a.Id = id
	rr, _ := dns.NewRR(name + " 2 IN A " + addr)
	a.Answer = []dns.RR{rr}
	p.Decide(udp(resolver, tc4, 53, sport, dnsWire(t, a)).raw(), nil, &d)
	return d
}

func TestDstName(t *testing.T) {
	p, tab := namesPipeline(t)
	var d Decision
	// Before the answer: not bound, the connection passes.
	p.Decide(tcp(tc4, bound4, 1000, 443, nil).raw(), nil, &d)
	if d.Action != ActionAccept {
		t.Fatalf("before the answer: %v", d.Action)
	}
	// A forged answer (no query) binds nothing and is itself accepted by
	// the policy.
	if d := resolve(t, p, 5000, 1, "www.blocked.example.", bound4, false); d.Action != ActionAccept {
		t.Fatalf("forged answer: %v", d.Action)
	}
	p.Decide(tcp(tc4, bound4, 1001, 443, nil).raw(), nil, &d)
	if d.Action != ActionAccept || tab.Stats().Unsolicited != 1 {
		t.Fatalf("after a forged answer: %v, %+v", d.Action, tab.Stats())
	}
	if d := resolve(t, p, 5001, 2, "www.blocked.example.", bound4, true); d.Action != ActionAccept || d.Offload {
		t.Fatalf("answer: %+v", d)
	}
	for _, pk := range []tpkt{tcp(tc4, bound4, 1002, 443, nil), udp(tc4, bound4, 1003, 443, []byte("x")), tcp(tc4, bound4, 1004, 22, nil)} {
		p.Decide(pk.raw(), nil, &d)
		if d.Action != ActionDrop || d.Rule != 0 {
			t.Fatalf("%v:%d after the answer: %v by %d", pk.proto, pk.dport, d.Action, d.Rule)
		}
	}
	p.Decide(tcp(tc4, other4, 1005, 443, nil).raw(), nil, &d)
	if d.Action != ActionAccept {
		t.Fatalf("other address: %v", d.Action)
	}
	// A name the rule does not name binds nothing.
	resolve(t, p, 5002, 3, "www.fine.example.", other4, true)
	p.Decide(tcp(tc4, other4, 1006, 443, nil).raw(), nil, &d)
	if d.Action != ActionAccept || tab.Stats().Bindings != 1 {
		t.Fatalf("unrelated name: %v, %+v", d.Action, tab.Stats())
	}
	tr := p.Trace(tcp(tc4, bound4, 1007, 443, nil).raw(), nil)
	if !strings.Contains(tr.String(), "dst_name  match") {
		t.Fatalf("trace:\n%s", tr)
	}
}

func TestSrcName(t *testing.T) {
	p, _ := namesPipeline(t, Rule{Name: "from-peer", Match: Match{SrcName: []string{"peer.example"}}, Action: ActionReject})
	resolve(t, p, 5000, 9, "peer.example.", ts4, true)
	var d Decision
	p.Decide(tcp(ts4, tc4, 1000, 22, nil).raw(), nil, &d)
	if d.Action != ActionReject {
		t.Fatalf("from the bound address: %v", d.Action)
	}
	p.Decide(tcp(tc4, ts4, 1001, 22, nil).raw(), nil, &d)
	if d.Action != ActionAccept {
		t.Fatalf("to the bound address: %v", d.Action)
	}
}

// A dropped query leaves nothing pending, and the answer of its flow (a
// reply of a dropped flow, dropped too) binds nothing.
func TestDstNameDroppedDNS(t *testing.T) {
	p, tab := namesPipeline(t,
		Rule{Name: "no-dns", Match: Match{Protos: []uint8{packet.ProtoUDP}, DstPorts: []PortRange{{Lo: 53, Hi: 53}}, Dst: pfx(resolver + "/32")}, Action: ActionDrop},
		Rule{Name: "no-blocked", Match: Match{DstName: []string{"*.blocked.example"}}, Action: ActionDrop})
	var d Decision
	q := new(dns.Msg)
	q.SetQuestion("www.blocked.example.", dns.TypeA)
	p.Decide(udp(tc4, resolver, 5000, 53, dnsWire(t, q)).raw(), nil, &d)
	if d.Action != ActionDrop {
		t.Fatalf("query: %v", d.Action)
	}
	if d := resolve(t, p, 5000, q.Id, "www.blocked.example.", bound4, false); d.Action != ActionDrop {
		t.Fatalf("answer: %v", d.Action)
	}
	if s := tab.Stats(); s.Bindings != 0 || s.Queries != 0 || s.Answers != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestDstNameCompile(t *testing.T) {
	_, err := CompileWith(&Policy{Default: ActionAccept, Rules: []Rule{{Name: "x", Match: Match{DstName: []string{"bad name"}}, Action: ActionDrop}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "dst_name") {
		t.Fatalf("bad name: %v", err)
	}
	// Without a table the matcher never matches.
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{{Name: "x", Match: Match{DstName: []string{"*"}}, Action: ActionDrop}}})
	var d Decision
	NewPipeline(c, nil).Decide(tcp(tc4, bound4, 1, 443, nil).raw(), nil, &d)
	if d.Action != ActionAccept || c.NameFilter() != nil {
		t.Fatalf("no table: %v", d.Action)
	}
}

func TestDstNameAllocs(t *testing.T) {
	p, _ := namesPipeline(t)
	resolve(t, p, 5000, 1, "www.blocked.example.", bound4, true)
	var d Decision
	g := &flowGen{raw: tcp(tc4, bound4, 1, 443, nil).raw()}
	h := &flowGen{raw: tcp(tc4, other4, 1, 443, nil).raw()}
	q := new(dns.Msg)
	q.SetQuestion("www.blocked.example.", dns.TypeA)
	qraw := udp(tc4, resolver, 5001, 53, dnsWire(t, q)).raw()
	if n := testing.AllocsPerRun(1000, func() {
		p.Decide(g.next(), nil, &d)
		if d.Action != ActionDrop {
			t.Fatal(d.Action)
		}
		p.Decide(h.next(), nil, &d)
		if d.Action != ActionAccept {
			t.Fatal(d.Action)
		}
		p.Decide(qraw, nil, &d)
	}); n != 0 {
		t.Fatalf("%v allocs per run", n)
	}
}

// BenchmarkDecideDstName is a first packet decided by a dst_name rule (a
// bound address, dropped) and one it passes (an address bound to nothing):
// the names table's lookup on the rule walk.
func BenchmarkDecideDstName(b *testing.B) {
	p, _ := namesPipeline(b)
	resolve(b, p, 5000, 1, "www.blocked.example.", bound4, true)
	var d Decision
	g := &flowGen{raw: tcp(tc4, bound4, 1, 443, nil).raw()}
	h := &flowGen{raw: tcp(tc4, other4, 1, 443, nil).raw()}
	b.ReportAllocs()
	for b.Loop() {
		p.Decide(g.next(), nil, &d)
		p.Decide(h.next(), nil, &d)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/decision")
}
