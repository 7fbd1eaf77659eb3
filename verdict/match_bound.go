package verdict

import (
	"encoding/binary"
	"net/netip"

	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/verdict/packet"
)

// boundNames is a Compiled's part of the dst_name and src_name matchers:
// the binding table they read, the ports whose DNS messages feed it, and
// the union of every rule's patterns (the names worth binding).
type boundNames struct {
	tab    *names.Table // nil: no table, or no rule uses names
	ports  []PortRange
	filter *nameSet
}

func newBoundNames(p *Policy, o *CompileOptions) boundNames {
	var pats []string
	for i := range p.Rules {
		pats = append(append(pats, p.Rules[i].Match.DstName...), p.Rules[i].Match.SrcName...)
	}
	if len(pats) == 0 || o == nil || o.Names == nil {
		return boundNames{}
	}
	f, err := newNameSet(pats)
	if err != nil {
		return boundNames{} // reported by the rule's own compile
	}
	b := boundNames{tab: o.Names, ports: o.NamePorts, filter: f}
	if b.ports == nil {
		b.ports = DefaultNamePorts
	}
	return b
}

// NameFilter returns the names the policy's dst_name and src_name
// matchers can match, for names.Table.SetFilter; nil when no rule has
// them or Compile had no table.
func (c *Compiled) NameFilter() names.Matcher {
	if c.bound.tab == nil {
		return nil
	}
	return c.bound.filter
}

// NamePorts returns the ports whose DNS messages feed the binding table,
// nil when nothing is bound.
func (c *Compiled) NamePorts() []PortRange {
	if c.bound.tab == nil {
		return nil
	}
	return c.bound.ports
}

// MatchName makes a nameSet a names.Matcher.
func (s *nameSet) MatchName(name []byte) bool { return s.match(name) }

// boundNames compiles a rule's dst_name and src_name.
func (rc *ruleCompiler) boundNames() {
	rc.cr.dstName = rc.nameSet("dst_name", rc.r.Match.DstName)
	rc.cr.srcName = rc.nameSet("src_name", rc.r.Match.SrcName)
}

// holds reports whether r's dst_name and src_name (if any) match p.
func (b *boundNames) holds(r *crule, p *packet.Packet) bool {
	return (r.dstName == nil || b.match(p.Dst, r.dstName)) && (r.srcName == nil || b.match(p.Src, r.srcName))
}

func (b *boundNames) match(a netip.Addr, s *nameSet) bool {
	return b.tab != nil && b.tab.Match(a, s)
}

// dnsTap reads the DNS query or answer a packet carries, so that after the
// packet's verdict an accepted query is recorded as pending and an
// accepted answer binds (names.Table.Answer checks that it answers a
// pending query). It reads before the rules run: a reply judged as its
// initiator's packet has its addresses swapped and its payload dropped.
type dnsTap struct {
	kind uint8
	tab  *names.Table
	flow names.Flow
	q    names.Question
	a    *names.Answer // allocated on the first answer
}

const (
	tapNone   = iota
	tapPort   // a DNS port: not offloaded, so every later answer is seen
	tapQuery  // q holds a query
	tapAnswer // a holds an answer
)

// peek parses the DNS message of a UDP datagram or a TCP segment that
// holds a whole length-prefixed message (an answer spread over segments
// binds nothing).
func (t *dnsTap) peek(c *Compiled, pk *packet.Packet) {
	if pk.FragOffset != 0 || pk.Proto != packet.ProtoUDP && pk.Proto != packet.ProtoTCP {
		return
	}
	query, answer := inPorts(c.bound.ports, pk.DstPort), inPorts(c.bound.ports, pk.SrcPort)
	if !query && !answer {
		return
	}
	t.kind, t.tab = tapPort, c.bound.tab
	msg := pk.Payload
	if pk.Proto == packet.ProtoTCP {
		if len(msg) < 2 || int(binary.BigEndian.Uint16(msg)) > len(msg)-2 {
			return
		}
		msg = msg[2 : 2+int(binary.BigEndian.Uint16(msg))]
	}
	if len(msg) == 0 {
		return
	}
	t.flow = names.Flow{Proto: pk.Proto, Src: pk.Src, Dst: pk.Dst, SrcPort: pk.SrcPort, DstPort: pk.DstPort}
	if query && names.ParseQuery(msg, &t.q) == names.OK {
		t.kind = tapQuery
		return
	}
	if !answer {
		return
	}
	if t.a == nil {
		t.a = new(names.Answer)
	}
	switch names.ParseAnswer(msg, t.a) {
	case names.OK:
		t.kind = tapAnswer
	case names.Malformed:
		t.tab.Malformed()
	}
}

// commit records what peek read once the packet is accepted.
func (t *dnsTap) commit(d *Decision) {
	d.Offload = false
	if d.Action != ActionAccept {
		return
	}
	switch t.kind {
	case tapQuery:
		t.tab.Query(t.flow, &t.q)
	case tapAnswer:
		t.tab.Answer(t.flow, t.a)
	}
}

// NameMatcher returns a names.Matcher for dst_name or src_name patterns
// (the rules package's name sets use it), or an error wrapping ErrBadName.
func NameMatcher(patterns []string) (names.Matcher, error) {
	s, err := newNameSet(patterns)
	if err != nil {
		return nil, err
	}
	return s, nil
}
