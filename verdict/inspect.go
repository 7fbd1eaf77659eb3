package verdict

import (
	"encoding/binary"

	"github.com/qguard/qguard/verdict/l7"
	"github.com/qguard/qguard/verdict/packet"
)

// tri is the outcome of a matcher that may need data not seen yet.
type tri uint8

const (
	triNo   tri = iota
	triYes      // matched
	triWait     // the L7 data it needs has not arrived: ask again on the flow's next packet
)

// inspect holds what one evaluation of one packet knows: the packet, its
// meta data and the L7 names extracted so far. Names are extracted at most
// once per packet, on the first rule that needs them, into fixed buffers.
type inspect struct {
	c     *Compiled
	p     *packet.Packet
	m     *Meta
	e     *flowEntry // nil for packets outside the flow table (fragments, Trace)
	ft    *FlowTable
	final bool // the L7 window is closed: missing data leaves the flow undecided

	perPacket bool // a matcher on per-packet state (mark, conntrack) was consulted
	perMsg    bool // a DNS message or HTTP request was read: later ones must be judged too
	undecided bool // a rule could not be evaluated: Policy.L7Undecided decides
	gap       bool // a segment of a followed stream after bytes not seen yet
	cont      bool // the payload only continues a message judged before

	// The DNS messages and HTTP requests of this packet, one unit at a time.
	unit     uint8     // needDNS or needHost: the kind whose units are iterated
	stream   *l7Stream // the flow's stream, once fed this packet
	sdata    []byte    // the packet's stream bytes not consumed yet
	dnsQ     l7.DNSQuestions
	inMsg    bool // dnsQ holds a message whose questions are being read
	msgFirst bool // its first question is next
	dnsCut   bool // the message is longer than what was collected

	got                   uint8 // needDNS, needSNI, needHost bits already extracted
	dnsSt, sniSt, hostSt  l7.Status
	dnsName, sniName      []byte
	hostName              []byte
	dnsBuf, sniBuf, hoBuf [l7.MaxNameLen]byte
	patIdx                int // the payload pattern that matched, for Trace

	// Rules satisfied by this packet's names and payload, from the
	// Compiled's L7 index, computed once per packet (gotBM bits).
	gotBM  uint8
	pruned uint8 // L7 kinds whose failing rules were removed from the candidates
	nameBM [3]bitmap
	payBM  bitmap
	pats   []uint64
}

func (x *inspect) reset(c *Compiled, p *packet.Packet, m *Meta, e *flowEntry, ft *FlowTable, final bool) {
	x.c, x.p, x.m, x.e, x.ft, x.final = c, p, m, e, ft, final
	x.perPacket, x.got, x.gotBM, x.pruned = false, 0, 0, 0
	x.perMsg, x.undecided, x.gap, x.cont = false, false, false, false
	x.unit, x.stream, x.sdata, x.inMsg = 0, nil, nil, false
}

// advance moves to the packet's next DNS message (question) or HTTP
// request, if any, for another walk of the rules. Names of other kinds and
// the payload lookup stay: they belong to the packet.
func (x *inspect) advance() bool {
	var name []byte
	var st l7.Status
	var ok bool
	if len(x.sdata) == 0 && !x.inMsg {
		return false // a message cut by the packet's end is the last one
	}
	switch x.unit {
	case needDNS:
		name, st, ok = x.dnsNext()
	case needHost:
		name, st, ok = x.httpNext()
	}
	if !ok {
		return false
	}
	x.setName(x.unit, name, st)
	x.got |= x.unit
	x.gotBM &^= x.unit
	x.pruned, x.undecided = 0, false
	return true
}

// fit sizes the scratch bitmaps for c; it allocates only when a policy
// larger than any before arrives.
func (x *inspect) fit(c *Compiled) {
	for i := range x.nameBM {
		if len(x.nameBM[i]) < c.words {
			x.nameBM[i] = newBitmap(c.words)
		}
		x.nameBM[i] = x.nameBM[i][:c.words]
	}
	if len(x.payBM) < c.words {
		x.payBM = newBitmap(c.words)
	}
	x.payBM = x.payBM[:c.words]
	if len(x.pats) < c.patWords {
		x.pats = make([]uint64, c.patWords)
	}
}

func hasU32(list []uint32, v uint32) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func inIDs(list []IDRange, v uint32) bool {
	for _, r := range list {
		if v >= r.Lo && v <= r.Hi {
			return true
		}
	}
	return false
}

// residual checks the matchers the index does not cover for rule i:
// mark, socket owner, conntrack state and L7.
func (x *inspect) residual(r *crule, i int) tri {
	m := x.m // interfaces: checked by the index
	if r.hasMark {
		x.perPacket = true
		if m.Mark&r.mark.Mask != r.mark.Value {
			return triNo
		}
	}
	if r.ct != 0 {
		x.perPacket = true
		if r.ct&m.ctBit() == 0 {
			return triNo
		}
	}
	if len(r.uids) > 0 && (!m.HasUID || !inIDs(r.uids, m.UID)) ||
		len(r.gids) > 0 && (!m.HasGID || !inIDs(r.gids, m.GID)) {
		return triNo
	}
	if !x.c.bound.holds(r, x.p) {
		return triNo
	}
	if r.l7 == 0 {
		return triYes
	}
	return x.l7Indexed(r, i)
}

// prune removes from cand the rules that an L7 matcher already known for
// this packet rules out: once a name is extracted, every rule needing a
// name it does not match fails the same way, so a policy of a thousand
// domain rules is not walked rule by rule.
func (x *inspect) prune(cand bitmap) {
	for k := 0; k < 4; k++ {
		kind := uint8(1) << k
		if x.pruned&kind != 0 || x.got&kind == 0 && x.gotBM&kind == 0 {
			continue // already done, or not looked at yet
		}
		need := x.c.need[k][:len(cand)]
		var ok bitmap // rules the packet satisfies; nil: none
		if kind == needPayload {
			if x.gotBM&kind == 0 {
				continue
			}
			ok = x.payBM
		} else {
			name, st := x.extract(kind)
			switch {
			case st == l7.Found:
				if x.gotBM&kind == 0 {
					x.c.names[k].lookup(name, x.nameBM[k])
					x.gotBM |= kind
				}
				ok = x.nameBM[k]
			case st == l7.NeedMore || st == l7.Unset || st == l7.Malformed || st == l7.TooLarge:
				continue // the rule's own check waits or leaves the flow undecided
			}
		}
		for w := range cand {
			keep := ^need[w]
			if ok != nil {
				keep |= ok[w]
			}
			cand[w] &= keep
		}
		x.pruned |= kind
	}
}

// l7Indexed checks rule i's L7 matchers through the Compiled's L7 index:
// no if any fails, wait if any lacks data.
func (x *inspect) l7Indexed(r *crule, i int) tri {
	res := triYes
	for slot, kind := range [3]uint8{needDNS, needSNI, needHost} {
		if r.l7&kind != 0 {
			if res = and(res, x.nameIndexed(kind, slot, i)); res == triNo {
				return res
			}
		}
	}
	if r.l7&needPayload != 0 {
		res = and(res, x.payloadIndexed(i))
	}
	return res
}

func (x *inspect) nameIndexed(kind uint8, slot, i int) tri {
	name, st := x.extract(kind)
	if st != l7.Found {
		return x.noName(st)
	}
	if x.gotBM&kind == 0 {
		x.c.names[slot].lookup(name, x.nameBM[slot])
		x.gotBM |= kind
	}
	if x.nameBM[slot].has(i) {
		return triYes
	}
	return triNo
}

func (x *inspect) payloadIndexed(i int) tri {
	if len(x.p.Payload) == 0 {
		return x.wait()
	}
	if x.gotBM&needPayload == 0 {
		x.c.pay.lookup(x.p.Payload, x.pats, x.payBM)
		x.gotBM |= needPayload
	}
	if x.payBM.has(i) {
		return triYes
	}
	return triNo
}

func and(a, b tri) tri {
	if a == triNo || b == triNo {
		return triNo
	}
	if a == triWait || b == triWait {
		return triWait
	}
	return triYes
}

func (x *inspect) payload(s *payloadSet) tri {
	if len(x.p.Payload) == 0 {
		return x.wait()
	}
	x.patIdx = s.match(x.p.Payload)
	if x.patIdx >= 0 {
		return triYes
	}
	return triNo
}

// wait is the answer of a matcher whose data has not arrived. Once the L7
// window is closed the flow is undecided instead: counting the missing
// data as no match would let a client skip a rule by never completing it.
func (x *inspect) wait() tri {
	if x.final {
		x.undecided = true
	}
	return triWait
}

// cannot is the answer of a matcher whose data cannot be read (malformed,
// or beyond what is reassembled): a server may still accept what qguard
// cannot parse, so the rule is not skipped; Policy.L7Undecided decides.
func (x *inspect) cannot() tri {
	x.undecided = true
	return triWait
}

// names matches the name of kind (needDNS, needSNI, needHost) against s.
func (x *inspect) names(kind uint8, s *nameSet) tri {
	name, st := x.extract(kind)
	if st != l7.Found {
		return x.noName(st)
	}
	if s.match(name) {
		return triYes
	}
	return triNo
}

// noName is the answer of a name matcher when the extractor found no name
// (st): wait for more data, undecided for data that cannot be read, no
// match for a message without a name or of another protocol.
func (x *inspect) noName(st l7.Status) tri {
	switch st {
	case l7.NeedMore, l7.Unset:
		return x.wait()
	case l7.Malformed, l7.TooLarge:
		return x.cannot()
	}
	return triNo
}

// extract returns the packet's name of the given kind, extracting it once.
func (x *inspect) extract(kind uint8) ([]byte, l7.Status) {
	if x.got&kind != 0 {
		switch kind {
		case needDNS:
			return x.dnsName, x.dnsSt
		case needSNI:
			return x.sniName, x.sniSt
		}
		return x.hostName, x.hostSt
	}
	x.got |= kind
	if x.e != nil && x.e.flags&(kind<<flowNoL7Shift) != 0 {
		x.setName(kind, nil, l7.NotProtocol) // settled by an earlier packet
		return nil, l7.NotProtocol
	}
	name, st, settle := x.extractPacket(kind)
	x.setName(kind, name, st)
	if x.e != nil && settle {
		// The flow's first data settles the kind: a later segment of the
		// same stream is no new message, so waiting could only re-read
		// mid-stream bytes as a protocol start.
		x.e.flags |= kind << flowNoL7Shift
		if kind == needSNI && x.e.hello != 0 {
			x.ft.hellos.put(x.e.hello)
			x.e.hello = 0
		}
		if kind == needHost && x.e.stream != 0 && x.ft.streams.at(x.e.stream).kind == needHost {
			x.ft.streams.put(x.ft, x.e.stream)
			x.e.stream, x.stream, x.unit = 0, nil, 0
		}
	}
	return name, st
}

// extractPacket runs the extractor of kind on the packet; settle reports
// that the flow can never carry the kind's name.
func (x *inspect) extractPacket(kind uint8) (name []byte, st l7.Status, settle bool) {
	p := x.p
	if p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP {
		return nil, l7.NotProtocol, false
	}
	if p.Proto == packet.ProtoTCP && p.TCPFlags&packet.TCPUrg != 0 && len(p.Payload) > 0 {
		// The receiver takes the urgent byte out of the stream (without
		// SO_OOBINLINE): the server reads other bytes than the segment
		// shows, so its name cannot be known.
		x.perMsg = kind != needSNI
		return nil, l7.Malformed, false
	}
	switch kind {
	case needDNS:
		x.perMsg = true
		name, st = x.dnsFirst()
		return name, st, false
	case needSNI:
		if len(p.Payload) == 0 {
			return nil, l7.Unset, false
		}
		name, st = x.serverName()
		// A TCP connection has one ClientHello; QUIC datagrams are judged
		// one by one (a server drops junk and takes the Initial after it).
		return name, st, p.Proto == packet.ProtoTCP && (st == l7.NotProtocol || st == l7.Malformed || st == l7.Absent)
	}
	if p.Proto != packet.ProtoTCP {
		return nil, l7.NotProtocol, false
	}
	if len(p.Payload) == 0 {
		x.perMsg = x.e != nil && x.e.stream != 0
		return nil, l7.Unset, false
	}
	if x.e == nil {
		name, st = l7.HTTPHost(skipEmptyLines(p.Payload), x.hoBuf[:0])
		return name, st, false
	}
	switch st = x.feed(needHost); st {
	case l7.Unset:
		name, st = l7.HTTPHost(skipEmptyLines(p.Payload), x.hoBuf[:0])
		return name, st, st == l7.NotProtocol
	case l7.Found:
	default:
		return nil, st, false
	}
	started := x.stream.started
	x.unit, x.perMsg = needHost, true
	name, st, ok := x.httpNext()
	if !ok {
		x.cont = true
		return nil, l7.Unset, false
	}
	if st == l7.NotProtocol && !started {
		x.perMsg = false
		return nil, st, true // the connection's first data is not HTTP
	}
	return name, st, false
}

// skipEmptyLines drops the empty lines a server ignores before a request
// line (RFC 9112 2.2).
func skipEmptyLines(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

// dataSeq is the sequence number of the packet's first payload byte: a SYN
// takes one before its data (TCP Fast Open).
func dataSeq(p *packet.Packet) uint32 {
	if p.TCPFlags&packet.TCPSyn != 0 {
		return p.TCPSeq + 1
	}
	return p.TCPSeq
}

// streamStart is where the initiator's byte stream begins: the SYN's
// sequence number plus one when the flow's SYN was seen, else this packet.
func (x *inspect) streamStart() uint32 {
	if x.e.flags&(flowISN|flowData) == flowISN {
		return uint32(x.e.rule)
	}
	return dataSeq(x.p)
}

// feed gives the packet's segment to the flow's stream of kind, creating
// the stream on the flow's first data, and leaves the new in-order bytes
// in x.sdata. l7.TooLarge: no stream was free, or the flow follows another
// kind; l7.NeedMore with x.gap: the segment comes after a hole.
func (x *inspect) feed(kind uint8) l7.Status {
	e := x.e
	if e.stream == 0 {
		i := x.ft.streams.get()
		if i == 0 {
			x.ft.streamsFull.Add(1)
			return l7.TooLarge
		}
		e.stream = i
		s := x.ft.streams.at(i)
		s.kind, s.next = kind, x.streamStart()
	}
	s := x.ft.streams.at(e.stream)
	if s.kind != kind {
		return l7.Unset // followed as the other protocol: read this packet alone
	}
	x.stream = s
	data, k := s.take(dataSeq(x.p), x.p.Payload)
	if k == segGap {
		x.gap = true
		return l7.NeedMore
	}
	x.sdata = data
	return l7.Found
}

// dnsFirst reads the packet's first DNS question: the datagram's over UDP,
// the next message's of the connection over TCP.
func (x *inspect) dnsFirst() ([]byte, l7.Status) {
	p := x.p
	if len(p.Payload) == 0 {
		return nil, l7.Unset
	}
	if p.Proto == packet.ProtoUDP {
		q, st := l7.ParseDNS(p.Payload, false)
		if st != l7.Found {
			return nil, st
		}
		x.dnsQ, x.inMsg, x.msgFirst, x.dnsCut, x.unit = q, true, true, false, needDNS
	} else if x.e == nil {
		return x.dnsAlone() // Trace
	} else {
		switch st := x.feed(needDNS); st {
		case l7.Unset:
			return x.dnsAlone()
		case l7.Found:
		default:
			return nil, st
		}
		x.unit = needDNS
	}
	name, st, ok := x.dnsNext()
	if !ok {
		x.cont = true
		return nil, l7.Unset
	}
	return name, st
}

// dnsAlone reads the first DNS message of a TCP payload without a stream,
// once all of it is there (a name may point forward into it), as a
// stream reads it.
func (x *inspect) dnsAlone() ([]byte, l7.Status) {
	p := x.p.Payload
	if len(p) >= 2 && len(p) < 2+int(binary.BigEndian.Uint16(p)) {
		return nil, l7.NeedMore
	}
	return l7.DNSQueryName(p, true, x.dnsBuf[:0])
}

// maxQuestions bounds the questions of one DNS message that are judged; a
// message with more is left to Policy.L7Undecided.
const maxQuestions = 8

// dnsNext returns the next question of the packet: of the message being
// read, else of the stream's next message. ok is false when there is none.
func (x *inspect) dnsNext() (name []byte, st l7.Status, ok bool) {
	for {
		if x.inMsg {
			first := x.msgFirst
			x.msgFirst = false
			if first && x.dnsQ.Count > maxQuestions {
				// Each question is judged by a walk of the rules: thousands
				// of them in a message would buy a flood that much work.
				// Servers answer more than one with FORMERR anyway.
				x.inMsg = false
				return nil, l7.TooLarge, true
			}
			name, _, _, st = x.dnsQ.Next(x.dnsBuf[:0])
			switch {
			case st == l7.Absent && !first:
				x.inMsg = false // every question read
				continue
			case st == l7.NeedMore && x.dnsCut:
				st = l7.TooLarge // the name points past the collected part
			}
			if st != l7.Found {
				x.inMsg = false
			}
			return name, st, true
		}
		if x.stream == nil {
			return nil, l7.Unset, false
		}
		msg, cut, sst := x.stream.nextDNS(x.ft, &x.sdata)
		switch sst {
		case l7.Unset:
			return nil, l7.Unset, false
		case l7.Found:
			q, qst := l7.ParseDNS(msg, false)
			if qst != l7.Found {
				return nil, qst, true // shorter than a header: no name
			}
			q.SetCut(cut)
			x.dnsQ, x.inMsg, x.msgFirst, x.dnsCut = q, true, true, cut
		default:
			return nil, sst, true
		}
	}
}

// httpNext returns the host of the stream's next request in the packet.
// ok is false when no request begins in the rest of the packet.
func (x *inspect) httpNext() (name []byte, st l7.Status, ok bool) {
	s := x.stream
	if s == nil {
		return nil, l7.Unset, false
	}
	head, sst := s.nextHTTP(x.ft, &x.sdata)
	switch sst {
	case l7.Unset:
		return nil, l7.Unset, false
	case l7.Found:
		started := s.started
		name, st = l7.HTTPHost(head, x.hoBuf[:0])
		if st == l7.NotProtocol && s.upgraded {
			s.phase, s.upgraded = phaseTunnel, false // the server switched protocols
			return nil, l7.Unset, false
		}
		s.afterHead(head)
		if st == l7.NotProtocol && started {
			s.phase, st = phaseLost, l7.Malformed // not a request where one must be
		}
		return name, st, true
	case l7.NeedMore:
		// A head cut short may already show that it is no request.
		if _, hst := l7.HTTPHost(head, x.hoBuf[:0]); hst == l7.NotProtocol || hst == l7.Malformed {
			if hst == l7.NotProtocol && s.upgraded {
				s.phase, s.n, s.upgraded = phaseTunnel, 0, false
				s.release(x.ft, true)
				return nil, l7.Unset, false
			}
			if hst == l7.NotProtocol && s.started {
				hst = l7.Malformed
			}
			s.phase, s.n = phaseLost, 0
			s.release(x.ft, true)
			return nil, hst, true
		}
		return nil, l7.NeedMore, true
	}
	return nil, sst, true
}

func (x *inspect) setName(kind uint8, name []byte, st l7.Status) {
	switch kind {
	case needDNS:
		x.dnsName, x.dnsSt = name, st
	case needSNI:
		x.sniName, x.sniSt = name, st
	default:
		x.hostName, x.hostSt = name, st
	}
}

// serverName reads the TLS server name, collecting a ClientHello that spans
// segments in the flow's HelloBuffer.
func (x *inspect) serverName() ([]byte, l7.Status) {
	p := x.p
	if p.Proto != packet.ProtoTCP {
		return x.quicServerName()
	}
	if x.e != nil && x.e.hello != 0 {
		h := x.ft.hellos.at(x.e.hello)
		st := h.Add(dataSeq(p), p.Payload)
		x.gap = h.Gap()
		if st != l7.Found {
			return nil, st
		}
		return h.ServerName(), l7.Found
	}
	if x.e != nil && x.e.flags&(flowISN|flowData) == flowISN && int32(dataSeq(p)-uint32(x.e.rule)) > 0 {
		// A later segment came first: read as the start of the stream it
		// would rule TLS out; dropped, it comes back in order.
		x.gap = true
		return nil, l7.NeedMore
	}
	name, st := l7.TLSServerName(p.Payload, x.sniBuf[:0])
	if st != l7.NeedMore || x.e == nil || x.final {
		return name, st
	}
	i := x.ft.hellos.get()
	if i == 0 {
		return nil, l7.TooLarge // no buffer free: the policy decides, not the client
	}
	x.e.hello = i
	h := x.ft.hellos.at(i)
	if st = h.Add(dataSeq(p), p.Payload); st == l7.Found {
		return h.ServerName(), st
	}
	return nil, st
}
