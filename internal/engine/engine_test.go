package engine

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/proto"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
)

// offline builds an engine without kernel objects around policy, as if
// rules were installed when withRules is set (so rejects and offloads use
// the mark scheme).
func offline(t testing.TB, p *verdict.Policy, withRules bool) *Engine {
	t.Helper()
	rc := rules.DefaultConfig()
	set := &settings{
		queue:  queue.Config{Num: 0, Count: 2},
		rules:  rc,
		marks:  rules.DefaultMarks,
		policy: p,
		// The default flow table (256k flows per pipeline) takes longer to
		// allocate than every test here takes to run.
		pipeline: &verdict.Options{Flows: &verdict.FlowConfig{Capacity: 1024}},
	}
	e, err := newEngine(set, &Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	e.rejectMarks = withRules
	e.gen.Load().flowMarks = withRules
	t.Cleanup(func() { e.Close() })
	return e
}

// udp4 builds an IPv4/UDP packet.
func udp4(src, dst string, sport, dport uint16, payload string) []byte {
	return pktbuild.IPv4{Proto: proto.UDP, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}.Build(pktbuild.UDP(sport, dport, []byte(payload)))
}

func port(p uint16) []verdict.PortRange { return []verdict.PortRange{{Lo: p, Hi: p}} }

func testPolicy() *verdict.Policy {
	return &verdict.Policy{
		Default: verdict.ActionAccept,
		Rules: []verdict.Rule{
			{Name: "drop-9", Match: verdict.Match{Protos: []uint8{17}, DstPorts: port(9)}, Action: verdict.ActionDrop},
			{Name: "reject-10", Match: verdict.Match{Protos: []uint8{17}, DstPorts: port(10)}, Action: verdict.ActionReject},
			{Name: "flow-11", Match: verdict.Match{Protos: []uint8{17}, DstPorts: port(11)}, Action: verdict.ActionAccept, Flow: true},
			{Name: "mark-12", Match: verdict.Match{Protos: []uint8{17}, DstPorts: port(12)}, Action: verdict.ActionAccept, Mark: 0x42, SetMark: true},
			{Name: "dropflow-13", Match: verdict.Match{Protos: []uint8{17}, DstPorts: port(13)}, Action: verdict.ActionDrop, Flow: true},
			{Name: "block-14", Match: verdict.Match{Protos: []uint8{17}, DstPorts: port(14)}, Action: verdict.ActionDrop, BlockSource: 60e9},
		},
	}
}

func TestHandleVerdicts(t *testing.T) {
	m := rules.DefaultMarks
	for _, tc := range []struct {
		name      string
		dport     uint16
		withRules bool
		queueNum  uint16
		mark      uint32 // packet mark before
		want      queue.Verdict
		wantMark  uint32
		setMark   bool
	}{
		{"default accept", 80, true, 0, 0, queue.Accept, 0, false},
		{"drop", 9, true, 1, 0, queue.Drop, 0, false},
		{"reject with rules", 10, true, 0, 0x7, queue.Repeat, 0x7 | m.Reject, true},
		{"reject without rules", 10, false, 0, 0, queue.Drop, 0, false},
		{"flow accept with rules", 11, true, 0, 0, queue.Repeat, m.AcceptFlow, true},
		{"flow accept without rules", 11, false, 0, 0, queue.Accept, 0, false},
		{"mark", 12, true, 0, 0, queue.Accept, 0x42, true},
		{"flow drop", 13, true, 0, 0x00ff0001, queue.Repeat, 0x1 | m.DropFlow, true},
		{"not our queue", 9, true, 7, 0, queue.VerdictUnset, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := offline(t, testPolicy(), tc.withRules)
			p := queue.Packet{Queue: tc.queueNum, Mark: tc.mark, Has: queue.AttrMark,
				Payload: udp4("198.18.1.2", "198.18.2.2", 4000+tc.dport, tc.dport, "x")}
			e.Handle(&p)
			if p.Verdict() != tc.want {
				t.Fatalf("verdict %v, want %v", p.Verdict(), tc.want)
			}
			mark, set := p.NewMark()
			if set != tc.setMark || (set && mark != tc.wantMark) {
				t.Fatalf("mark %#x set=%v, want %#x set=%v", mark, set, tc.wantMark, tc.setMark)
			}
		})
	}
}

func TestHitsAndStats(t *testing.T) {
	e := offline(t, testPolicy(), true)
	for i := range 3 {
		p := queue.Packet{Queue: uint16(i % 2), Payload: udp4("198.18.1.2", "198.18.2.2", 1000+uint16(i), 9, "x")}
		e.Handle(&p)
	}
	p := queue.Packet{Payload: udp4("198.18.1.2", "198.18.2.2", 1000, 80, "x")}
	e.Handle(&p)
	if h := e.Hits("drop-9"); h != 3 {
		t.Errorf("drop-9 hits %d, want 3", h)
	}
	if h := e.Hits(CounterDefault); h != 1 {
		t.Errorf("default hits %d, want 1", h)
	}
	s := e.Stats()
	if s.Queues[0].Packets != 3 || s.Queues[1].Packets != 1 || s.Queues[0].Dropped != 2 || s.Queues[0].Accepted != 1 {
		t.Errorf("queue stats %+v", s.Queues)
	}
	if s.Rules[0].Name != "drop-9" || s.Rules[0].Hits != 3 || s.Default.Hits != 1 {
		t.Errorf("rule stats %+v default %+v", s.Rules, s.Default)
	}
}

func TestBlockSourceNonBlocking(t *testing.T) {
	e := offline(t, testPolicy(), true)
	// No Start: nobody drains the channel, so it fills and further
	// requests are counted and dropped instead of blocking the handler.
	n := cap(e.blockCh) + 10
	for i := range n {
		src := netip.AddrFrom4([4]byte{198, 18, 1, byte(i % 250)}).String()
		p := queue.Packet{Payload: udp4(src, "198.18.2.2", uint16(2000+i), 14, "x")}
		e.Handle(&p)
		if p.Verdict() != queue.Drop {
			t.Fatalf("packet %d: verdict %v", i, p.Verdict())
		}
	}
	s := e.Stats()
	if s.BlockQueued != uint64(cap(e.blockCh)) || s.BlockDropped != 10 {
		t.Errorf("block queued %d dropped %d, want %d and 10", s.BlockQueued, s.BlockDropped, cap(e.blockCh))
	}
}

func TestReloadSwapsPolicy(t *testing.T) {
	e := offline(t, testPolicy(), true)
	send := func() queue.Verdict {
		p := queue.Packet{Payload: udp4("198.18.1.2", "198.18.2.2", 5555, 9, "x")}
		e.Handle(&p)
		return p.Verdict()
	}
	if v := send(); v != queue.Drop {
		t.Fatalf("before reload: %v", v)
	}
	np := testPolicy()
	np.Rules = np.Rules[1:] // drop-9 removed
	set := *e.set
	set.policy = np
	if err := e.reloadSettings(&set); err != nil {
		t.Fatal(err)
	}
	if v := send(); v != queue.Accept {
		t.Fatalf("after reload: %v (the flow's cached drop must not survive the swap)", v)
	}
	// A policy that does not compile keeps the old one.
	bad := testPolicy()
	bad.Default = verdict.ActionUnset
	set.policy = bad
	if err := e.reloadSettings(&set); err == nil {
		t.Fatal("reload of a policy without default succeeded")
	}
	if v := send(); v != queue.Accept {
		t.Fatalf("after failed reload: %v", v)
	}
	if s := e.Stats(); s.Reloads != 2 || s.Failures != 1 || s.LastReloadError == "" {
		t.Errorf("reload counters %d/%d %q", s.Reloads, s.Failures, s.LastReloadError)
	}
	if h := e.Hits("drop-9"); h != 1 {
		t.Errorf("drop-9 kept %d hits across reloads, want 1", h)
	}
}

func TestHandleAllocs(t *testing.T) {
	e := offline(t, testPolicy(), true)
	pkts := [][]byte{
		udp4("198.18.1.2", "198.18.2.2", 1000, 80, "hello"),
		udp4("198.18.1.2", "198.18.2.2", 1001, 9, "hello"),
		udp4("198.18.1.2", "198.18.2.2", 1002, 10, "hello"),
		udp4("198.18.1.2", "198.18.2.2", 1003, 11, "hello"),
		udp4("198.18.1.2", "198.18.2.2", 1004, 12, "hello"),
	}
	var p queue.Packet
	for _, b := range pkts { // warm the flow table
		p = queue.Packet{Payload: b}
		e.Handle(&p)
	}
	i := 0
	batch := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		// Half with the queue's receive time (the pipeline's clock), half
		// made by hand without one (the clock is read).
		p = queue.Packet{Payload: pkts[i%len(pkts)]}
		if i&1 == 0 {
			p.Received = batch
		}
		e.Handle(&p)
		i++
	})
	if allocs != 0 {
		t.Fatalf("Handle allocates %v times per packet", allocs)
	}
}

// TestHandleClock: the pipeline's clock is the time the queue received the
// packet, so flows expire by it (the packet path reads no clock of its own).
func TestHandleClock(t *testing.T) {
	e := offline(t, testPolicy(), true)
	pkt := udp4("198.18.1.2", "198.18.2.2", 1000, 80, "hello")
	t0 := time.Now()
	for _, c := range []struct {
		at     time.Duration
		cached bool
	}{
		{0, false},
		{time.Second, true},
		{2 * time.Second, true},
		{2*time.Second + verdict.DefaultUDPTimeout + time.Second, false}, // idle longer than the UDP timeout
		{3*time.Second + verdict.DefaultUDPTimeout + time.Second, true},
	} {
		p := queue.Packet{Payload: pkt, Received: t0.Add(c.at)}
		e.Handle(&p)
		if d := e.qs[0].dec; d.Cached != c.cached {
			t.Errorf("packet received at +%v: cached %t, want %t", c.at, d.Cached, c.cached)
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	e := offline(b, testPolicy(), true)
	pkt := udp4("198.18.1.2", "198.18.2.2", 1000, 80, "hello")
	var p queue.Packet
	now := time.Now() // the queue's receive time: one clock read per batch
	b.ReportAllocs()
	for b.Loop() {
		p = queue.Packet{Payload: pkt, Received: now}
		e.Handle(&p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// TestReloadConcurrent: reloads while two queue goroutines decide packets;
// meant for -race, and every packet must get a verdict from one policy.
func TestReloadConcurrent(t *testing.T) {
	e := offline(t, testPolicy(), true)
	stop := make(chan struct{})
	done := make(chan error, 2)
	for q := range 2 {
		go func() {
			pkt := udp4("198.18.1.2", "198.18.2.2", 1000+uint16(q), 9, "x")
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				p := queue.Packet{Queue: uint16(q), Payload: pkt}
				e.Handle(&p)
				if v := p.Verdict(); v != queue.Drop && v != queue.Accept {
					done <- fmt.Errorf("verdict %v", v)
					return
				}
			}
		}()
	}
	for i := range 50 {
		set := *e.set
		set.policy = testPolicy()
		if i%2 == 1 {
			set.policy.Rules = set.policy.Rules[1:]
		}
		if err := e.reloadSettings(&set); err != nil {
			t.Fatal(err)
		}
		_ = e.Stats()
	}
	close(stop)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkPipelineOnly is BenchmarkHandle without the engine around the
// pipeline: the difference is the engine's own per-packet cost (meta,
// counters, rule hit, verdict mapping).
func BenchmarkPipelineOnly(b *testing.B) {
	e := offline(b, testPolicy(), true)
	pkt := udp4("198.18.1.2", "198.18.2.2", 1000, 80, "hello")
	pipe := e.qs[0].pipe
	e.qs[0].now = time.Now() // as Handle sets it from the packet
	var m verdict.Meta
	var d verdict.Decision
	b.ReportAllocs()
	for b.Loop() {
		pipe.Decide(pkt, &m, &d)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
