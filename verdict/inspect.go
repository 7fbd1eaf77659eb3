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
}

func (x *inspect) reset(p *Packet, m *Meta, e *flowEntry, ft *FlowTable, final bool) {
	x.p, x.m, x.e, x.ft, x.final = p, m, e, ft, final
	x.perPacket, x.got = false, 0
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

// residual checks the matchers the index does not cover.
func (x *inspect) residual(r *crule) tri {
	m := x.m
	if r.hasIn && !hasU32(r.inIf, m.InIf) || r.hasOut && !hasU32(r.outIf, m.OutIf) {
		return triNo
	}
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
	return x.l7(r)
}

// l7 checks a rule's L7 matchers: no if any fails, wait if any lacks data.
func (x *inspect) l7(r *crule) tri {
	res := triYes
	if r.l7&needDNS != 0 {
		res = and(res, x.names(needDNS, r.dns))
	}
	if res != triNo && r.l7&needSNI != 0 {
		res = and(res, x.names(needSNI, r.sni))
	}
	if res != triNo && r.l7&needHost != 0 {
		res = and(res, x.names(needHost, r.host))
	}
	if res != triNo && r.l7&needPayload != 0 {
		res = and(res, x.payload(r.payload))
	}
	return res
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
	p := x.p
	if len(p.Payload) == 0 || p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		st := L7Unset
		if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
			st = L7NotProtocol
		}
		x.setName(kind, nil, st)
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
	x.setName(kind, name, st)
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
		return nil, L7NotProtocol
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
