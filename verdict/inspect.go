package verdict

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
	p     *Packet
	m     *Meta
	e     *flowEntry // nil for packets outside the flow table (fragments, Trace)
	ft    *FlowTable
	final bool // the L7 wait bound is reached: missing data means no match

	perPacket bool // a matcher on per-packet state (mark, conntrack) was consulted

	got                   uint8 // needDNS, needSNI, needHost bits already extracted
	dnsSt, sniSt, hostSt  L7Status
	dnsName, sniName      []byte
	hostName              []byte
	dnsBuf, sniBuf, hoBuf [MaxNameLen]byte
	patIdx                int // the payload pattern that matched, for Trace

	// Rules satisfied by this packet's names and payload, from the
	// Compiled's L7 index, computed once per packet (gotBM bits).
	gotBM  uint8
	pruned uint8 // L7 kinds whose failing rules were removed from the candidates
	nameBM [3]bitmap
	payBM  bitmap
	pats   []uint64
}

func (x *inspect) reset(c *Compiled, p *Packet, m *Meta, e *flowEntry, ft *FlowTable, final bool) {
	x.c, x.p, x.m, x.e, x.ft, x.final = c, p, m, e, ft, final
	x.perPacket, x.got, x.gotBM, x.pruned = false, 0, 0, 0
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
			case st == L7Found:
				if x.gotBM&kind == 0 {
					x.c.names[k].lookup(name, x.nameBM[k])
					x.gotBM |= kind
				}
				ok = x.nameBM[k]
			case (st == L7NeedMore || st == L7Unset) && !x.final:
				continue // the name may still come
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
	switch st {
	case L7Found:
		if x.gotBM&kind == 0 {
			x.c.names[slot].lookup(name, x.nameBM[slot])
			x.gotBM |= kind
		}
		if x.nameBM[slot].has(i) {
			return triYes
		}
		return triNo
	case L7NeedMore, L7Unset:
		return x.wait()
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

func (x *inspect) wait() tri {
	if x.final {
		return triNo
	}
	return triWait
}

// names matches the name of kind (needDNS, needSNI, needHost) against s.
func (x *inspect) names(kind uint8, s *nameSet) tri {
	name, st := x.extract(kind)
	switch st {
	case L7Found:
		if s.match(name) {
			return triYes
		}
		return triNo
	case L7NeedMore, L7Unset:
		return x.wait()
	}
	return triNo
}

// extract returns the packet's name of the given kind, extracting it once.
func (x *inspect) extract(kind uint8) ([]byte, L7Status) {
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
		x.setName(kind, nil, L7NotProtocol) // settled by an earlier packet
		return nil, L7NotProtocol
	}
	name, st := x.extractPacket(kind)
	x.setName(kind, name, st)
	if x.e != nil && (st == L7NotProtocol || st == L7Malformed || st == L7Absent) && !(kind == needSNI && x.p.Proto == ProtoUDP) {
		// The flow's first data settles the kind: a later segment of the
		// same stream is no new message, so waiting could only re-read
		// mid-stream bytes as a protocol start.
		x.e.flags |= kind << flowNoL7Shift
		if kind == needSNI && x.e.hello != 0 {
			x.ft.hellos.put(x.e.hello)
			x.e.hello = 0
		}
	}
	return name, st
}

// extractPacket runs the extractor of kind on the packet.
func (x *inspect) extractPacket(kind uint8) ([]byte, L7Status) {
	p := x.p
	if len(p.Payload) == 0 || p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		st := L7Unset
		if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
			st = L7NotProtocol
		}
		return nil, st
	}
	var name []byte
	var st L7Status
	switch kind {
	case needDNS:
		name, st = DNSQueryName(p.Payload, p.Proto == ProtoTCP, x.dnsBuf[:0])
	case needSNI:
		name, st = x.serverName()
	default:
		if p.Proto != ProtoTCP {
			st = L7NotProtocol
			break
		}
		name, st = HTTPHost(p.Payload, x.hoBuf[:0])
	}
	return name, st
}

func (x *inspect) setName(kind uint8, name []byte, st L7Status) {
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
func (x *inspect) serverName() ([]byte, L7Status) {
	p := x.p
	if p.Proto != ProtoTCP {
		return x.quicServerName()
	}
	if x.e != nil && x.e.hello != 0 {
		h := x.ft.hellos.at(x.e.hello)
		if st := h.Add(p.TCPSeq, p.Payload); st != L7Found {
			return nil, st
		}
		return h.ServerName(), L7Found
	}
	name, st := TLSServerName(p.Payload, x.sniBuf[:0])
	if st != L7NeedMore || x.e == nil || x.final {
		return name, st
	}
	i := x.ft.hellos.get()
	if i == 0 {
		return nil, L7Absent
	}
	x.e.hello = i
	return nil, x.ft.hellos.at(i).Add(p.TCPSeq, p.Payload)
}
