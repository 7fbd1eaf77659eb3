package verdict

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/qguard/qguard/verdict/packet"
)

// bigPolicy is the benchmark policy: rule 0 drops sources in a set of
// nPrefixes random prefixes (none inside 198.18.0.0/15), then nRules-2 rules
// on TCP ports and /16 sources, then the rule the benchmark packets match.
func bigPolicy(nRules, nPrefixes int) *Policy {
	r := rand.New(rand.NewPCG(1, 2))
	set := make([]netip.Prefix, 0, nPrefixes)
	for len(set) < nPrefixes {
		var a netip.Addr
		bits := 16 + r.IntN(17)
		if r.IntN(10) == 0 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:], 0x2a00000000000000|r.Uint64()>>8)
			a, bits = netip.AddrFrom16(b), 32+r.IntN(33)
		} else {
			a = netip.AddrFrom4([4]byte{byte(1 + r.IntN(190)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		}
		set = append(set, netip.PrefixFrom(a, bits).Masked())
	}
	p := &Policy{Default: ActionDrop, Sets: map[string][]netip.Prefix{"blocklist": set}}
	p.Rules = append(p.Rules, Rule{Name: "blocklist", Match: Match{SrcSets: []string{"blocklist"}}, Action: ActionDrop})
	for i := 1; i < nRules-1; i++ {
		m := Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: uint16(1000 + i), Hi: uint16(1000 + i)})}
		if i%3 == 0 {
			m.Src = pfx(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16).String())
		}
		if i%5 == 0 {
			m.Protos = []uint8{packet.ProtoUDP}
			m.DNS = []string{"*.example" + string(rune('a'+i%26))}
		}
		p.Rules = append(p.Rules, Rule{Name: "r" + itoa(i), Match: m, Action: ActionAccept})
	}
	p.Rules = append(p.Rules, Rule{Name: "web", Action: ActionAccept,
		Match: Match{Protos: []uint8{packet.ProtoTCP}, Dst: pfx("198.18.2.0/24", "2001:db8:2::/64"), DstPorts: ports(PortRange{Lo: 443, Hi: 443})}})
	return p
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// newFlowPacket rewrites the source address and port of a TCP packet so
// every call yields a flow not seen for a long time.
type flowGen struct {
	raw []byte
	n   uint32
}

func (g *flowGen) next() []byte {
	g.n++
	binary.BigEndian.PutUint16(g.raw[20:], uint16(1024+g.n%64000))
	q := g.n / 64000
	g.raw[15] = byte(q)
	g.raw[14] = byte(q >> 8)
	return g.raw
}

// batchClock is the clock the engine gives its pipelines, the time the
// queue received the packet's batch, here one batch for the whole
// benchmark: the figures are the decision's cost without a clock read (a
// pipeline without Options.Now reads the clock on every Decide).
func batchClock() func() time.Time {
	t := time.Now()
	return func() time.Time { return t }
}

func benchPipeline(b *testing.B) *Pipeline {
	c, err := Compile(bigPolicy(1000, 100000))
	if err != nil {
		b.Fatal(err)
	}
	return NewPipeline(c, &Options{Flows: &FlowConfig{Capacity: 1 << 20}, Now: batchClock()})
}

// timeDecisions starts the timed loop of a Decide benchmark (allocations
// reported, the timer reset, the thread's CPU clock read); the function it
// returns ends it and reports decisions per second and per CPU-second.
func timeDecisions(b *testing.B) (stop func()) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	return func() {
		b.StopTimer()
		cpu.report(b, "decisions")
	}
}

// decideNewFlows times b.N decisions, each on the first packet of a new
// flow made from raw (flowGen), and returns the last decision.
func decideNewFlows(b *testing.B, p *Pipeline, raw []byte) Decision {
	g := &flowGen{raw: raw}
	var m Meta
	var d Decision
	stop := timeDecisions(b)
	for i := 0; i < b.N; i++ {
		p.Decide(g.next(), &m, &d)
	}
	stop()
	return d
}

func BenchmarkDecideFirstPacket(b *testing.B) {
	if d := decideNewFlows(b, benchPipeline(b), tcp(tc4, ts4, 1, 443, nil).raw()); d.Rule != 999 || d.Cached {
		b.Fatalf("decision %+v", d)
	}
}

func BenchmarkDecideCachedFlow(b *testing.B) {
	p := benchPipeline(b)
	const flows = 4096
	pkts := make([][]byte, flows)
	g := &flowGen{raw: tcp(tc4, ts4, 1, 443, []byte("payload")).raw()}
	var m Meta
	var d Decision
	for i := range pkts {
		pkts[i] = append([]byte(nil), g.next()...)
		p.Decide(pkts[i], &m, &d)
	}
	stop := timeDecisions(b)
	for i := 0; i < b.N; i++ {
		p.Decide(pkts[i&(flows-1)], &m, &d)
	}
	stop()
	if d.Rule != 999 || !d.Cached {
		b.Fatalf("decision %+v", d)
	}
}

func BenchmarkDecideFirstPacketDNS(b *testing.B) {
	decideNewFlows(b, benchPipeline(b), udp(tc4, ts4, 1, 53, tDNS("www.example.org")).raw())
}

func BenchmarkCompile1000Rules100kPrefixes(b *testing.B) {
	pol := bigPolicy(1000, 100000)
	b.ReportAllocs()
	var c *Compiled
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		var err error
		if c, err = Compile(pol); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-retained")
	runtime.KeepAlive(c)
}

func flowKeys(n int) []flowKey {
	ks := make([]flowKey, n)
	g := &flowGen{raw: tcp(tc4, ts4, 1, 443, nil).raw()}
	var p packet.Packet
	for i := range ks {
		packet.Decode(g.next(), &p)
		ks[i], _ = makeKey(&p)
	}
	return ks
}

// BenchmarkFlowTable1M inserts 1M flows into a 1M-flow table, then looks
// them up in random order.
func BenchmarkFlowTable1M(b *testing.B) {
	const n = 1 << 20
	ks := flowKeys(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t := NewFlowTable(&FlowConfig{Capacity: n})
	runtime.GC()
	runtime.ReadMemStats(&after)
	tableMiB := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	b.Run("insert", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			k := &ks[i&(n-1)]
			t.get(k, k.hash(t.seed), int64(i), false)
		}
		cpu.report(b, "ops")
		b.ReportMetric(float64(FlowEntrySize), "bytes/flow")
		b.ReportMetric(tableMiB, "MiB/1M-flows")
	})
	for i := range ks {
		t.get(&ks[i], ks[i].hash(t.seed), int64(n+i), false)
	}
	perm := rand.Perm(n)
	b.Run("lookup", func(b *testing.B) {
		b.ReportAllocs()
		miss := 0
		cpu := startCPU(b)
		for i := 0; i < b.N; i++ {
			k := &ks[perm[i&(n-1)]]
			if _, found := t.get(k, k.hash(t.seed), int64(2*n), false); !found {
				miss++
			}
		}
		cpu.report(b, "ops")
		b.ReportMetric(float64(miss)/float64(b.N), "miss/op")
	})
}

// BenchmarkPrefixSet shows that the size of a prefix set hardly changes
// the cost of the candidate lookup (one bart lookup per direction).
func BenchmarkPrefixSet(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		b.Run(itoa(n), func(b *testing.B) {
			c, err := Compile(bigPolicy(2, n))
			if err != nil {
				b.Fatal(err)
			}
			var pk packet.Packet
			addrs := make([][]byte, 256)
			for i := range addrs {
				addrs[i] = tcp(netip.AddrFrom4([4]byte{byte(1 + i%190), byte(i * 7), byte(i * 13), 1}).String(), ts4, 1, 443, nil).raw()
			}
			out := make(bitmap, c.words)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				packet.Decode(addrs[i&255], &pk)
				c.idx.candidates(&pk, &Meta{}, out)
			}
		})
	}
}

// BenchmarkDecideDNS1000Rules: a thousand rules that each block a domain,
// all candidates for every DNS query; the query matches the last one. The
// L7 index makes this cost one name extraction and a few map lookups.
func BenchmarkDecideDNS1000Rules(b *testing.B) {
	p := &Policy{Default: ActionAccept}
	for i := 0; i < 1000; i++ {
		p.Rules = append(p.Rules, Rule{Name: "d" + itoa(i), Action: ActionDrop,
			Match: Match{Protos: []uint8{packet.ProtoUDP}, DNS: []string{"*.blocked" + itoa(i) + ".example"}}})
	}
	c, err := Compile(p)
	if err != nil {
		b.Fatal(err)
	}
	pl := NewPipeline(c, &Options{Flows: &FlowConfig{Capacity: 1 << 20}, Now: batchClock()})
	if d := decideNewFlows(b, pl, udp(tc4, ts4, 1, 53, tDNS("www.blocked999.example")).raw()); d.Rule != 999 {
		b.Fatalf("decision %+v", d)
	}
}
