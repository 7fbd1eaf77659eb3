package verdict

import (
	"testing"
	"time"

	"github.com/qguard/qguard/verdict/packet"
)

// fakeClock is a settable clock for pipelines under test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Unix(1e9, 0)} }
func decide(p *Pipeline, t tpkt, m *Meta) (d Decision) {
	if m == nil {
		m = &Meta{}
	}
	p.Decide(t.raw(), m, &d)
	return d
}

func TestCachedBothDirections(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionDrop, Rules: []Rule{
		{Name: "web", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 443, Hi: 443})}, Action: ActionAccept, Flow: true},
	}})
	for _, fam := range [][2]string{{tc4, ts4}, {tc6, ts6}} {
		p := NewPipeline(c, nil)
		syn := tcp(fam[0], fam[1], 40000, 443, nil)
		d := decide(p, syn, nil)
		if d.Action != ActionAccept || d.Rule != 0 || d.Cached || !d.Offload {
			t.Fatalf("first packet: %+v", d)
		}
		// The reply would hit the default drop if judged alone; the flow's
		// decision covers it.
		d = decide(p, syn.reply(), nil)
		if d.Action != ActionAccept || d.Rule != 0 || !d.Cached {
			t.Fatalf("reply: %+v", d)
		}
		d = decide(p, tcp(fam[0], fam[1], 40000, 443, []byte("data")), nil)
		if !d.Cached || d.Action != ActionAccept {
			t.Fatalf("third packet: %+v", d)
		}
		if s := p.Stats(); s.Cached != 2 || s.Evaluated != 1 || s.Flows.Size != 1 || s.Flows.Inserts != 1 {
			t.Errorf("stats %+v", s)
		}
		// Another source port is another flow, judged alone.
		if d = decide(p, syn.reply(), nil); !d.Cached {
			t.Errorf("reply again: %+v", d)
		}
		if d = decide(p, tcp(fam[1], fam[0], 443, 40001, nil), nil); d.Cached || d.Action != ActionDrop {
			t.Errorf("unrelated packet: %+v", d)
		}
	}
}

func TestL7PendingUntilClientHello(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "tls-bad", Match: Match{SNI: []string{"*.bad.example"}}, Action: ActionDrop, BlockSource: 5 * time.Minute, Log: true},
	}})
	for _, fam := range [][2]string{{tc4, ts4}, {tc6, ts6}} {
		p := NewPipeline(c, nil)
		syn := tcp(fam[0], fam[1], 40000, 443, nil)
		steps := []struct {
			p    tpkt
			rule int
			act  Action
		}{
			{syn, RulePending, ActionAccept},
			{tpkt{src: fam[1], dst: fam[0], proto: packet.ProtoTCP, sport: 443, dport: 40000, flags: packet.TCPSyn | packet.TCPAck}, RulePending, ActionAccept},
			{tpkt{src: fam[0], dst: fam[1], proto: packet.ProtoTCP, sport: 40000, dport: 443, flags: packet.TCPAck}, RulePending, ActionAccept},
			{tcp(fam[0], fam[1], 40000, 443, tHello("www.bad.example")), 0, ActionDrop},
			{syn.reply(), 0, ActionDrop},
		}
		for i, s := range steps {
			d := decide(p, s.p, nil)
			if d.Rule != s.rule || d.Action != s.act {
				t.Fatalf("%s step %d: %+v, want rule %d %v", fam[0], i, d, s.rule, s.act)
			}
			if i == 3 && (d.BlockSource != 5*time.Minute || !d.Log || d.Cached) {
				t.Errorf("deciding packet: %+v", d)
			}
			if i == 4 && (d.BlockSource != 0 || d.Log || !d.Cached) {
				t.Errorf("cached packet: %+v", d)
			}
		}
		// A flow with a good name is decided by the default and cached.
		decide(p, tcp(fam[0], fam[1], 40002, 443, nil), nil)
		d := decide(p, tcp(fam[0], fam[1], 40002, 443, tHello("good.example")), nil)
		if d.Rule != RuleDefault || d.Action != ActionAccept {
			t.Errorf("good flow: %+v", d)
		}
	}
}

// TestL7WaitBound: the L7 window counts packets that carry data, so empty
// ACKs cannot use it up; a flow whose data is still incomplete when it
// closes is decided by Policy.L7Undecided, not by skipping the rule.
func TestL7WaitBound(t *testing.T) {
	for _, und := range []Action{ActionUnset, ActionAccept, ActionReject} {
		c := mustCompile(t, &Policy{Default: ActionAccept, L7Packets: 3, L7Undecided: und, Rules: []Rule{
			{Name: "host", Match: Match{HTTPHost: []string{"blocked.example"}}, Action: ActionDrop},
		}})
		want := und
		if want == ActionUnset {
			want = ActionDrop
		}
		p := NewPipeline(c, nil)
		decide(p, tcp(tc4, ts4, 1, 80, nil), nil)
		ack := tpkt{src: tc4, dst: ts4, proto: packet.ProtoTCP, sport: 1, dport: 80, flags: packet.TCPAck}
		for i := 0; i < 20; i++ {
			if d := decide(p, ack, nil); d.Rule != RulePending {
				t.Fatalf("empty ACK %d: %+v, want pending", i, d)
			}
		}
		req := []byte("GET / HTTP/1.1\r\nX: 1\r\nX: 2\r\nX: 3\r\n")
		for i := 0; i < 3; i++ {
			seg := tcp(tc4, ts4, 1, 80, req[i*10:i*10+10])
			seg.seq = uint32(i * 10)
			d := decide(p, seg, nil)
			if i < 2 && d.Rule != RulePending || i == 2 && (d.Rule != RuleUndecided || d.Action != want) {
				t.Fatalf("undecided %s: data packet %d: %+v", und, i, d)
			}
		}
		if s := p.Stats(); s.Undecided != 1 {
			t.Errorf("stats: %+v", s)
		}
	}
}

func TestHelloAcrossSegments(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "sni", Match: Match{SNI: []string{"split.example"}}, Action: ActionReject},
	}})
	p := NewPipeline(c, nil)
	hello := tHello("split.example")
	a := tpkt{src: tc6, dst: ts6, proto: packet.ProtoTCP, sport: 5, dport: 443, seq: 1000, payload: hello[:30]}
	b := tpkt{src: tc6, dst: ts6, proto: packet.ProtoTCP, sport: 5, dport: 443, seq: 1030, payload: hello[30:]}
	if d := decide(p, a, nil); d.Rule != RulePending {
		t.Fatalf("first segment: %+v", d)
	}
	if n := len(p.flows.hellos.bufs); n != 1 {
		t.Fatalf("hello buffers in use: %d", n)
	}
	if d := decide(p, b, nil); d.Rule != 0 || d.Action != ActionReject {
		t.Fatalf("second segment: %+v", d)
	}
	if n := len(p.flows.hellos.free); n != 1 {
		t.Errorf("hello buffer not returned: %d free", n)
	}
}

func TestSwapInvalidatesCache(t *testing.T) {
	accept := mustCompile(t, &Policy{Default: ActionAccept})
	drop := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{{Name: "d", Match: Match{Family: 4}, Action: ActionDrop}}})
	p := NewPipeline(accept, nil)
	pk := udp(tc4, ts4, 1, 2, []byte("x"))
	decide(p, pk, nil)
	if d := decide(p, pk, nil); !d.Cached || d.Action != ActionAccept {
		t.Fatalf("before swap: %+v", d)
	}
	done := make(chan struct{})
	go func() { p.Swap(drop); close(done) }()
	<-done
	if d := decide(p, pk.reply(), nil); d.Cached || d.Action != ActionDrop || d.Rule != 0 {
		t.Fatalf("reply after swap (judged as the initiator's packet): %+v", d)
	}
	if d := decide(p, pk, nil); !d.Cached || d.Action != ActionDrop {
		t.Fatalf("after swap: %+v", d)
	}
}

func TestRateLimit(t *testing.T) {
	clk := newClock()
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{{Name: "rl", Action: ActionAccept,
		Match:     Match{Protos: []uint8{packet.ProtoUDP}},
		RateLimit: &RateLimit{Rate: Rate{Events: 1, Per: time.Second}, Burst: 2, Key: RateKeySource, Exceed: ActionReject}}}})
	p := NewPipeline(c, &Options{Now: clk.now})
	from := func(src string, sport uint16) Decision { return decide(p, udp(src, ts4, sport, 9, []byte("q")), nil) }
	for i, want := range []bool{false, false, true} {
		d := from(tc4, uint16(100+i)) // separate flows, same source
		if d.Limited != want || (want && d.Action != ActionReject) || (!want && d.Action != ActionAccept) {
			t.Fatalf("packet %d: %+v", i, d)
		}
	}
	if d := from("198.18.1.3", 1); d.Limited {
		t.Errorf("other source limited: %+v", d)
	}
	clk.add(time.Second)
	if d := from(tc4, 100); d.Limited || !d.Cached {
		t.Errorf("after refill (cached flow still counted): %+v", d)
	}
	if d := from(tc4, 100); !d.Limited {
		t.Errorf("cached flow over the limit: %+v", d)
	}
	if s := p.Stats(); s.Limited != 2 {
		t.Errorf("Limited = %d", s.Limited)
	}
}

func TestRateLimitBoundedKeys(t *testing.T) {
	l, err := newLimiter(&RateLimit{Rate: Rate{Events: 1, Per: time.Second}, MaxKeys: 64})
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(1); k < 100000; k++ {
		l.allow(k, int64(k))
	}
	n, ev := 0, uint64(0)
	for i := range l.shards {
		n += len(l.shards[i].sets) * limWays
		ev += l.shards[i].evict
	}
	if n > 64 || ev != 99999-64 {
		t.Errorf("slots %d evictions %d", n, ev)
	}
}

func TestLogRateLimited(t *testing.T) {
	clk := newClock()
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{{Name: "log", Action: ActionAccept, Log: true}}})
	p := NewPipeline(c, &Options{Now: clk.now, LogRate: Rate{Events: 2, Per: time.Second}})
	logged := 0
	for i := 0; i < 10; i++ {
		if decide(p, udp(tc4, ts4, uint16(i+1), 9, nil), nil).Log {
			logged++
		}
	}
	if logged != 2 || p.Stats().LogDenied != 8 {
		t.Errorf("logged %d, denied %d", logged, p.Stats().LogDenied)
	}
	clk.add(time.Second)
	if !decide(p, udp(tc4, ts4, 100, 9, nil), nil).Log {
		t.Error("no log after refill")
	}
}

func TestPerPacketMatchersNotCached(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "marked", Match: Match{Mark: &MarkMatch{Value: 1, Mask: 1}}, Action: ActionDrop, Mark: 0x42, SetMark: true},
	}})
	p := NewPipeline(c, nil)
	pk := tcp(tc6, ts6, 1, 2, nil)
	if d := decide(p, pk, &Meta{Mark: 1, HasMark: true}); d.Action != ActionDrop || !d.SetMark || d.Mark != 0x42 {
		t.Fatalf("marked: %+v", d)
	}
	if d := decide(p, pk, &Meta{}); d.Action != ActionAccept || d.Cached {
		t.Fatalf("unmarked, same flow: %+v", d)
	}
}

func TestInvalidAndFragments(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Invalid: ActionDrop, Rules: []Rule{
		{Name: "p80", Match: Match{DstPorts: ports(PortRange{Lo: 80, Hi: 80})}, Action: ActionReject},
		{Name: "udp", Match: Match{Protos: []uint8{packet.ProtoUDP}}, Action: ActionDrop},
	}})
	p := NewPipeline(c, nil)
	var d Decision
	p.Decide([]byte{0x45, 0, 0}, &Meta{}, &d)
	if d.Action != ActionDrop || d.Rule != RuleInvalid || d.Reason != packet.ReasonTruncated {
		t.Errorf("truncated: %+v", d)
	}
	frag := udp(tc4, ts4, 1, 80, make([]byte, 16))
	frag.fragOff = 64
	if d := decide(p, frag, nil); d.Rule != 1 || d.Cached {
		t.Errorf("non-first fragment (no ports: skips p80): %+v", d)
	}
	if s := p.Stats(); s.Flows.Size != 0 || s.Invalid != 1 {
		t.Errorf("stats %+v", s)
	}
}

type markStage struct{}

func (markStage) Name() string { return "mark" }
func (markStage) Decide(c *Context, d *Decision) bool {
	if c.Packet.DstPort == 7 {
		d.Action = ActionDrop
		return true
	}
	d.Mark, d.SetMark = 9, true
	return false
}

func TestStages(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept})
	p := NewPipeline(c, nil)
	p.Use(markStage{})
	if d := decide(p, udp(tc4, ts4, 1, 7, nil), nil); d.Rule != RuleStage || d.Stage != "mark" || d.Action != ActionDrop {
		t.Errorf("final stage: %+v", d)
	}
	if d := decide(p, udp(tc4, ts4, 1, 7, nil), nil); d.Cached {
		t.Errorf("stage decision cached: %+v", d)
	}
	if d := decide(p, udp(tc4, ts4, 1, 8, nil), nil); d.Rule != RuleDefault || !d.SetMark || d.Mark != 9 {
		t.Errorf("passing stage: %+v", d)
	}
}

func TestTraceString(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "ssh", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 22, Hi: 22})}, Action: ActionDrop},
		{Name: "dns", Match: Match{Src: pfx("198.18.0.0/15"), DNS: []string{"*.example"}}, Action: ActionReject, Mark: 3, SetMark: true},
	}})
	p := NewPipeline(c, nil)
	tr := p.Trace(udp(tc4, ts4, 1, 53, tDNS("a.example")).raw(), nil)
	want := `packet: udp 198.18.1.2:1 -> 198.18.2.2:53, 27 payload bytes
rule "ssh" (#0): no match
  proto     no match packet udp
rule "dns" (#1): match
  src       match    198.18.1.2 in [198.18.0.0/15]
  dport     match    53 in [53] (implied by dns)
  dns       match    packet name "a.example" vs [*.example]
decision: reject by dns, mark 0x3`
	if got := tr.String(); got != want {
		t.Errorf("trace:\n%s\nwant:\n%s", got, want)
	}
}

// TestSwapConcurrent runs Decide while another goroutine swaps policies and
// reads the counters (run with -race).
func TestSwapConcurrent(t *testing.T) {
	a := mustCompile(t, &Policy{Default: ActionAccept})
	b := mustCompile(t, &Policy{Default: ActionDrop})
	p := NewPipeline(a, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				p.Swap(b)
			} else {
				p.Swap(a)
			}
			_ = p.Stats()
		}
	}()
	raw := udp(tc4, ts4, 1, 2, nil).raw()
	var d Decision
	for i := 0; i < 20000; i++ {
		p.Decide(raw, &Meta{}, &d)
		if d.Action != ActionAccept && d.Action != ActionDrop {
			t.Fatalf("decision %+v", d)
		}
	}
	close(stop)
	<-done
	p.Swap(b)
	if p.Decide(raw, &Meta{}, &d); d.Action != ActionDrop || d.Cached {
		t.Errorf("after the last swap: %+v", d)
	}
}

func TestLimiterKeysAllocs(t *testing.T) {
	var p packet.Packet
	packet.Decode(tcp(tc6, ts6, 1, 2, nil).raw(), &p)
	k, _ := makeKey(&p)
	for _, key := range []RateKey{RateKeySource, RateKeyFlow, RateKeyRule} {
		l, err := newLimiter(&RateLimit{Rate: Rate{Events: 5, Per: time.Second}, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { l.allow(l.keyOf(&p, &k), 1) }); n != 0 {
			t.Errorf("key %v: %v allocs", key, n)
		}
	}
}

// TestDecisionRule: every decision names its rule, cached ones and the
// default's too, so that the caller's count (the engine's) is complete.
func TestDecisionRule(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "udp", Match: Match{Protos: []uint8{packet.ProtoUDP}}, Action: ActionDrop},
		{Name: "tcp", Match: Match{Protos: []uint8{packet.ProtoTCP}}, Action: ActionAccept},
	}})
	p := NewPipeline(c, nil)
	for i := 0; i < 3; i++ {
		if d := decide(p, udp(tc4, ts4, 1, 2, nil), nil); d.Rule != 0 || d.Cached != (i > 0) {
			t.Errorf("udp packet %d: rule %d cached %v", i, d.Rule, d.Cached)
		}
	}
	if d := decide(p, tpkt{src: tc6, dst: ts6, proto: packet.ProtoICMPv6, icmpType: 128}, nil); d.Rule != RuleDefault {
		t.Errorf("icmpv6: rule %d, want the default", d.Rule)
	}
	p.Swap(c)
	if d := decide(p, udp(tc4, ts4, 1, 2, nil), nil); d.Rule != 0 {
		t.Errorf("after swap: rule %d", d.Rule)
	}
}

// TestReplyFirstWithConntrack checks that a flow first seen through a
// reply (its entry expired) is judged from the initiator's side when
// conntrack says the packet is a reply.
func TestReplyFirstWithConntrack(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionDrop, Rules: []Rule{
		{Name: "to-web", Match: Match{Dst: pfx(ts4 + "/32"), DstPorts: ports(PortRange{Lo: 443, Hi: 443})}, Action: ActionAccept},
	}})
	p := NewPipeline(c, nil)
	reply := tcp(ts4, tc4, 443, 40000, []byte("data"))
	if d := decide(p, reply, &Meta{HasCT: true, CTState: CTEstablishedReply}); d.Action != ActionAccept || d.Rule != 0 {
		t.Fatalf("reply with conntrack: %+v", d)
	}
	if d := decide(p, reply.reply(), &Meta{HasCT: true, CTState: CTEstablished}); !d.Cached || d.Action != ActionAccept {
		t.Fatalf("original direction: %+v", d)
	}
	ci := mustCompile(t, &Policy{Default: ActionDrop, Rules: []Rule{
		{Name: "from-clients", Match: Match{InIfaces: []string{"fw-c"}, OutIfaces: []string{"fw-s"}}, Action: ActionAccept},
	}})
	if d := decide(NewPipeline(ci, nil), reply, &Meta{InIf: 8, OutIf: 7, HasCT: true, CTState: CTEstablishedReply}); d.Action != ActionAccept {
		t.Errorf("reply first, interfaces seen from the initiator: %+v", d)
	}
	if d := decide(NewPipeline(c, nil), reply, &Meta{}); d.Action != ActionDrop {
		t.Errorf("reply without conntrack (judged as it comes): %+v", d)
	}
}
