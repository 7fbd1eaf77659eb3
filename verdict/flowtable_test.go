package verdict

import (
	"testing"
	"time"

	"github.com/qguard/qguard/verdict/packet"
)

func keyOf(t *testing.T, p tpkt) (flowKey, bool) {
	t.Helper()
	var pk packet.Packet
	if !packet.Decode(p.raw(), &pk) {
		t.Fatalf("decode: %v", pk.Invalid)
	}
	return makeKey(&pk)
}

func TestFlowKeyBothDirections(t *testing.T) {
	for _, p := range []tpkt{
		tcp(tc4, ts4, 40000, 443, nil), tcp(tc6, ts6, 443, 40000, nil), udp(tc4, tc4, 9, 10, nil),
		{src: tc4, dst: ts4, proto: packet.ProtoICMP, icmpType: 8, icmpID: 77},
		{src: tc6, dst: ts6, proto: packet.ProtoICMPv6, icmpType: 128, icmpID: 77},
	} {
		k1, a1 := keyOf(t, p)
		r := p.reply()
		if p.proto == packet.ProtoICMP || p.proto == packet.ProtoICMPv6 {
			r.icmpType = 0
			if p.proto == packet.ProtoICMPv6 {
				r.icmpType = 129
			}
		}
		k2, a2 := keyOf(t, r)
		if k1 != k2 || a1 == a2 && p.src != p.dst {
			t.Errorf("%v: keys %v/%v, srcIsA %v/%v", p, k1, k2, a1, a2)
		}
	}
	k1, _ := keyOf(t, tcp(tc4, ts4, 1, 2, nil))
	k2, _ := keyOf(t, udp(tc4, ts4, 1, 2, nil))
	k3, _ := keyOf(t, tcp(tc4, ts4, 1, 3, nil))
	if k1 == k2 || k1 == k3 {
		t.Error("distinct flows share a key")
	}
}

func TestFlowTableTimeouts(t *testing.T) {
	ft := NewFlowTable(&FlowConfig{Capacity: 64, TCPTimeout: 10 * time.Second, UDPTimeout: 2 * time.Second,
		OtherTimeout: time.Second, ClosingTimeout: 500 * time.Millisecond})
	get := func(p tpkt, at time.Duration, closing bool) bool {
		k, _ := keyOf(t, p)
		_, found := ft.get(&k, k.hash(ft.seed), int64(at), closing)
		return found
	}
	tcpF, udpF := tcp(tc4, ts4, 1, 2, nil), udp(tc6, ts6, 1, 2, nil)
	icmpF := tpkt{src: tc4, dst: ts4, proto: packet.ProtoICMP, icmpType: 8, icmpID: 1}
	get(tcpF, 0, false)
	get(udpF, 0, false)
	get(icmpF, 0, false)
	if !get(tcpF, 9*time.Second, false) || !get(udpF, 1900*time.Millisecond, false) || !get(icmpF, 900*time.Millisecond, false) {
		t.Fatal("flow expired before its timeout")
	}
	if get(icmpF, 1950*time.Millisecond, false) {
		t.Error("other flow outlived its timeout")
	}
	if get(udpF, 4*time.Second, false) {
		t.Error("udp flow outlived its timeout")
	}
	get(tcpF, 10*time.Second, true) // FIN seen
	if get(tcpF, 11*time.Second, false) {
		t.Error("closing tcp flow outlived the closing timeout")
	}
	s := ft.Stats()
	if s.Expirations != 3 || s.Inserts != 6 || s.Size != 3 {
		t.Errorf("stats %+v", s)
	}
	// The sweep reclaims flows nobody looks up again.
	for i := 0; i < len(ft.buckets); i++ {
		ft.tick(int64(time.Hour))
	}
	if s := ft.Stats(); s.Size != 0 || s.Expirations != 6 {
		t.Errorf("after sweep: %+v", s)
	}
}

// TestFlowTableFlood feeds many random tuples to a small table: memory and
// size stay bounded, the excess is counted as evictions, and a flow in use
// survives better than the flood's (it is the most recently seen).
func TestFlowTableFlood(t *testing.T) {
	ft := NewFlowTable(&FlowConfig{Capacity: 1024})
	g := &flowGen{raw: udp(tc4, ts4, 1, 53, nil).raw()}
	var p packet.Packet
	for i := 0; i < 200000; i++ {
		packet.Decode(g.next(), &p)
		k, _ := makeKey(&p)
		ft.get(&k, k.hash(ft.seed), int64(i)*1e6, false)
	}
	s := ft.Stats()
	if s.Capacity != 1024 || s.Size != 1024 || s.Evictions != 200000-1024 || s.Inserts != 200000 {
		t.Errorf("stats %+v", s)
	}
	if n := testing.AllocsPerRun(1000, func() {
		packet.Decode(g.next(), &p)
		k, _ := makeKey(&p)
		ft.get(&k, k.hash(ft.seed), 1e12, false)
	}); n != 0 {
		t.Errorf("insert under flood: %v allocs", n)
	}
}

// TestSlots: indexes 1..max are handed out once each, then 0; a given-back
// index is handed out again, last given first, and never as fresh.
func TestSlots(t *testing.T) {
	var s slots
	s.init(3)
	for want := uint16(1); want <= 3; want++ {
		if i, fresh := s.take(); i != want || !fresh {
			t.Fatalf("take = %d, %v; want %d, fresh", i, fresh, want)
		}
	}
	if i, fresh := s.take(); i != 0 || fresh {
		t.Fatalf("take from a full pool = %d, %v", i, fresh)
	}
	s.give(2)
	s.give(1)
	for _, want := range []uint16{1, 2, 0} {
		if i, fresh := s.take(); i != want || fresh {
			t.Fatalf("take = %d, %v; want %d, not fresh", i, fresh, want)
		}
	}
	s.give(3)
	if n := testing.AllocsPerRun(100, func() { i, _ := s.take(); s.give(i) }); n != 0 {
		t.Errorf("take and give: %v allocs", n)
	}
}

func TestHelloPoolBounded(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{{Name: "sni", Match: Match{SNI: []string{"x.example"}}, Action: ActionDrop}}})
	p := NewPipeline(c, &Options{Flows: &FlowConfig{HelloBuffers: 2}})
	part := tHello("x.example")[:20]
	for i := 0; i < 5; i++ {
		d := decide(p, tcp(tc4, ts4, uint16(100+i), 443, part), nil)
		// No buffer free: the policy decides, not the client (who could
		// otherwise fill the pool and walk past the rule).
		if i < 2 && d.Rule != RulePending || i >= 2 && (d.Rule != RuleUndecided || d.Action != ActionDrop) {
			t.Errorf("flow %d: %+v", i, d)
		}
	}
	if s := p.Stats().Flows; s.HelloFull != 3 || len(p.flows.hellos.bufs) != 2 {
		t.Errorf("stats %+v, %d buffers", s, len(p.flows.hellos.bufs))
	}
}

func TestFlowEntrySize(t *testing.T) {
	if FlowEntrySize > 64 {
		t.Errorf("FlowEntrySize = %d, want at most 64 (1M flows = 64 MiB)", FlowEntrySize)
	}
}

// TestFlowTableHalfLoad checks that a table half full keeps every flow:
// two-choice buckets absorb the hash's unevenness.
func TestFlowTableHalfLoad(t *testing.T) {
	ft := NewFlowTable(&FlowConfig{Capacity: 1 << 14})
	ks := flowKeys(1 << 13)
	for i := range ks {
		if _, found := ft.get(&ks[i], ks[i].hash(ft.seed), 0, false); found {
			t.Fatalf("key %d found before insertion", i)
		}
	}
	for i := range ks {
		if _, found := ft.get(&ks[i], ks[i].hash(ft.seed), 0, false); !found {
			t.Fatalf("key %d lost", i)
		}
	}
	if s := ft.Stats(); s.Evictions != 0 || s.Size != len(ks) {
		t.Errorf("stats %+v", s)
	}
}
