package verdict

import (
	"encoding/binary"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/verdict/packet"
)

// Flows judged message by message are evaluated on every packet, not served
// from the cache: these are the allocation tests and the benchmarks of that
// path, beside the cached-flow cost (BenchmarkDecideCachedFlow and the
// "cached" case below).

// keepAlive is one inspected connection whose packets are sent again and
// again with their sequence numbers advanced in place, so that each Decide
// sees the next message of a long-lived stream.
type keepAlive struct {
	p    *Pipeline
	segs [][]byte // IPv4 TCP packets without options
	lens []uint32
	seq  uint32
	i    int
	d    Decision
}

func newKeepAlive(p *Pipeline, sport, dport uint16, payloads ...[]byte) *keepAlive {
	k := &keepAlive{p: p, seq: 1000}
	syn := tcp(tc4, ts4, sport, dport, nil)
	syn.seq = k.seq
	p.Decide(syn.raw(), nil, &k.d)
	for _, pl := range payloads {
		k.segs = append(k.segs, tcp(tc4, ts4, sport, dport, pl).raw())
		k.lens = append(k.lens, uint32(len(pl)))
	}
	return k
}

// next sends the next segment.
func (k *keepAlive) next() {
	raw := k.segs[k.i]
	binary.BigEndian.PutUint32(raw[24:], k.seq)
	k.seq += k.lens[k.i]
	k.i = (k.i + 1) % len(k.segs)
	k.p.Decide(raw, nil, &k.d)
}

func inspectedPolicy(t testing.TB) *Compiled {
	return mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "dns", Match: Match{DNS: []string{"*.blocked.test"}}, Action: ActionDrop},
		{Name: "sni", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop},
		{Name: "http", Match: Match{HTTPHost: []string{"*.blocked.test"}}, Action: ActionReject},
		{Name: "web", Match: Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: ports(PortRange{Lo: 9443, Hi: 9443})}, Action: ActionAccept},
	}})
}

// inspectedCases are the per-message paths, each a function sending one
// packet of a flow under inspection, and the rule it must end in.
func inspectedCases(p *Pipeline) []struct {
	name string
	send func()
	want func(d *Decision) bool
} {
	accepted := func(d *Decision) bool { return d.Action == ActionAccept && !d.Cached }
	udpQ := udp(tc4, ts4, 5353, 53, pktbuild.DNSQuery(1, "www.allowed.test")).raw()
	var ud Decision
	tcpDNSConn := newKeepAlive(p, 1, 53, pktbuild.TCPDNS(pktbuild.DNSQuery(1, "www.allowed.test")))
	req := []byte("GET /index.html HTTP/1.1\r\nHost: www.allowed.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	httpConn := newKeepAlive(p, 2, 80, req)
	splitConn := newKeepAlive(p, 3, 80, req[:30], req[30:])
	post := []byte("POST /up HTTP/1.1\r\nHost: www.allowed.test\r\nContent-Length: 2800\r\n\r\n")
	bodyConn := newKeepAlive(p, 4, 80, post, make([]byte, 1400), make([]byte, 1400))
	cached := newKeepAlive(p, 5, 9443, []byte("data\r\n"))
	return []struct {
		name string
		send func()
		want func(d *Decision) bool
	}{
		{"udp-dns-query", func() { p.Decide(udpQ, nil, &ud) }, func(*Decision) bool { return accepted(&ud) }},
		{"tcp-dns-query", tcpDNSConn.next, func(*Decision) bool { return accepted(&tcpDNSConn.d) }},
		{"http-keepalive-request", httpConn.next, func(*Decision) bool { return accepted(&httpConn.d) }},
		{"http-request-in-two-segments", splitConn.next, func(*Decision) bool {
			return splitConn.d.Action == ActionAccept && !splitConn.d.Cached
		}},
		{"http-body-segments", bodyConn.next, func(*Decision) bool { return accepted(&bodyConn.d) }},
		{"cached", cached.next, func(*Decision) bool { return cached.d.Cached }},
	}
}

func TestDecideAllocsInspected(t *testing.T) {
	p := NewPipeline(inspectedPolicy(t), nil)
	for _, tc := range inspectedCases(p) {
		for i := 0; i < 6; i++ {
			tc.send()
		}
		if !tc.want(nil) {
			t.Errorf("%s: unexpected decision", tc.name)
		}
		if n := testing.AllocsPerRun(300, tc.send); n != 0 {
			t.Errorf("%s: %v allocs a packet", tc.name, n)
		}
	}
}

// BenchmarkDecideInspected reports the per-packet cost of keeping DNS and
// HTTP flows under inspection (every packet evaluated) next to a cached
// flow's.
func BenchmarkDecideInspected(b *testing.B) {
	p := NewPipeline(inspectedPolicy(b), &Options{Now: batchClock()})
	for _, tc := range inspectedCases(p) {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.send()
			}
			if !tc.want(nil) {
				b.Fatal("unexpected decision")
			}
		})
	}
}
