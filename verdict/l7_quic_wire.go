package verdict

import (
	"sync/atomic"
	"time"

	"github.com/qguard/qguard/verdict/l7"
	"github.com/qguard/qguard/verdict/packet"
)

// QUIC in the pipeline: sni rules read the server name of QUIC Initials
// on UDP port 443 and on the destination ports sni rules name. Each
// datagram is judged on its own (UDP has no stream whose first bytes
// settle the protocol); the flow's QUICHello keeps the connection's
// reassembly between datagrams. A flow decided from one connection's
// ClientHello still has its later Initials judged (Pipeline.Decide asks
// quicRecheck), since a client may open another connection, to another
// name, on the same 5-tuple.

// quicDefaultPort is where QUIC is inspected without a rule naming ports:
// HTTP/3 (RFC 9114 3.1).
const quicDefaultPort = 443

// DefaultQUICBuffers bounds the flows collecting QUIC Initials at once
// (about 25 KiB each). A buffer returns to the pool when the client moves
// on to Handshake or 1-RTT packets, or the flow ends, or is taken when
// stale (quicStealAge); a flow that finds none free gets l7.TooLarge,
// decided by policy.
const DefaultQUICBuffers = 1024

// quicPortsOf returns the UDP destination ports where sni rules look for
// QUIC: 443 and the ports of every sni rule that lists destination ports.
// Nil when no rule has an sni matcher.
func quicPortsOf(rules []crule) []PortRange {
	var ports []PortRange
	for i := range rules {
		if rules[i].sni == nil {
			continue
		}
		if ports == nil {
			ports = []PortRange{{Lo: quicDefaultPort, Hi: quicDefaultPort}}
		}
		ports = append(ports, rules[i].dports...)
	}
	return ports
}

func (c *Compiled) quicPort(port uint16) bool {
	for _, r := range c.quicPorts {
		if port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}

// quicRecheck reports whether a packet of a flow with a cached decision
// must be evaluated again: a QUIC Initial to a port where sni rules read
// QUIC, which can start a new connection's ClientHello. Other client
// packets of the flow tell when its QUICHello can go back to the pool.
func (t *FlowTable) quicRecheck(c *Compiled, e *flowEntry, p *packet.Packet, reply bool) bool {
	if reply || p.Proto != packet.ProtoUDP || c.quicPorts == nil || !c.quicPort(p.DstPort) {
		return false
	}
	if l7.QUICInitial(p.Payload) {
		if e.quic == 0 {
			e.pkts = 0 // likely a new connection: a new L7 window for its ClientHello
		}
		return true
	}
	if e.quic != 0 && e.quic != quicLost {
		if t.quics.feed(e.quic, p.Payload); t.quics.at(e.quic).Done() {
			t.quics.put(e.quic)
			e.quic = 0
		}
	}
	return false
}

// quicFlow reports whether p belongs to a UDP flow where sni rules read
// QUIC (either direction): its later Initials must come to the pipeline,
// so such a flow is never offloaded to the kernel.
func (c *Compiled) quicFlow(p *packet.Packet) bool {
	return p.Proto == packet.ProtoUDP && c.quicPorts != nil && (c.quicPort(p.DstPort) || c.quicPort(p.SrcPort))
}

// quicServerName is the sni extractor for UDP packets.
func (x *inspect) quicServerName() ([]byte, l7.Status) {
	p := x.p
	if !x.c.quicPort(p.DstPort) {
		return nil, l7.NotProtocol
	}
	if x.e == nil {
		// No flow (Trace, which may run beside Decide): this datagram
		// alone, in a QUICHello of its own.
		return l7.NewQUICHello().Feed(p.Payload)
	}
	if x.e.quic == quicLost {
		if l7.QUICInitial(p.Payload) {
			return nil, l7.TooLarge
		}
		return nil, l7.QUICUnopened(p.Payload)
	}
	if x.e.quic == 0 {
		if !l7.QUICInitial(p.Payload) {
			return nil, l7.QUICUnopened(p.Payload) // what a fresh QUICHello would answer
		}
		if x.e.quic = x.ft.quics.get(x.e); x.e.quic == 0 {
			return nil, l7.TooLarge
		}
	}
	name, st := x.ft.quics.feed(x.e.quic, p.Payload)
	if x.ft.quics.at(x.e.quic).Done() {
		// The client has left the Initial phase: the answer is in the
		// flow's decision; a later connection gets a fresh buffer.
		n := copy(x.sniBuf[:], name)
		name = x.sniBuf[:n:n]
		x.ft.quics.put(x.e.quic)
		x.e.quic = 0
	}
	return name, st
}

// quicStealAge is how long a flow keeps a QUICHello it no longer feeds
// when every buffer is in use. A client sends its whole first flight at
// once and moves on within a round trip, so a buffer untouched for this
// long holds a stalled (or spoofed) handshake; taking it costs its flow at
// most a retransmitted ClientHello collected again.
const quicStealAge = int64(time.Second)

// quicLost in flowEntry.quic marks a flow whose partly read ClientHello
// was taken by the pool (see quicPool.get).
const quicLost = ^uint16(0)

// quicPool lends QUICHellos to UDP flows, like helloPool: allocated on
// first need up to the bound, then reused. When all are in use, the one
// fed longest ago is taken from its flow if it is older than quicStealAge,
// so flooding the pool with handshakes that never finish holds it only as
// long as the flood is kept up.
type quicPool struct {
	slots
	bufs  []*l7.QUICHello
	owner []*flowEntry // the flow each buffer is lent to
	last  []int64      // when each buffer was last fed, ns on clock
	clock func() int64
	full  atomic.Uint64
}

func (p *quicPool) init(n int) {
	n = min(n, int(quicLost)-1)
	p.slots.init(n)
	p.bufs = make([]*l7.QUICHello, 0, n)
	p.owner = make([]*flowEntry, 0, n)
	p.last = make([]int64, 0, n)
	p.clock = monoNow // a pipeline sets its own
}

// get lends a buffer to e and returns its index, or 0 when every buffer
// is in use and none is old enough to take.
func (p *quicPool) get(e *flowEntry) uint16 {
	now := p.clock()
	i, fresh := p.take()
	switch {
	case fresh:
		p.bufs = append(p.bufs, l7.NewQUICHello())
		p.owner, p.last = append(p.owner, nil), append(p.last, 0)
	case i == 0:
		if i = p.oldest(now); i == 0 {
			p.full.Add(1)
			return 0
		}
		// A flow that loses a partly read ClientHello cannot have the
		// rest judged: the server may complete it from pieces that
		// passed as pending, so the flow's later Initials are too large.
		if p.bufs[i-1].Partial() {
			p.owner[i-1].quic = quicLost
		} else {
			p.owner[i-1].quic = 0
		}
		p.bufs[i-1].Reset()
	}
	p.owner[i-1], p.last[i-1] = e, now
	return i
}

// oldest returns the buffer fed longest ago if it is older than
// quicStealAge, else 0.
func (p *quicPool) oldest(now int64) uint16 {
	var best uint16
	for j, t := range p.last {
		if now-t > quicStealAge && (best == 0 || t < p.last[best-1]) {
			best = uint16(j + 1)
		}
	}
	return best
}

// feed gives d to buffer i on behalf of its flow.
func (p *quicPool) feed(i uint16, d []byte) ([]byte, l7.Status) {
	p.last[i-1] = p.clock()
	return p.bufs[i-1].Feed(d)
}

func (p *quicPool) put(i uint16) {
	if i == quicLost {
		return
	}
	p.bufs[i-1].Reset()
	p.owner[i-1] = nil
	p.give(i)
}

func (p *quicPool) at(i uint16) *l7.QUICHello { return p.bufs[i-1] }
