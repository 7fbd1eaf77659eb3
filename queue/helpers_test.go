package queue

// msg builds netlink messages byte by byte for tests, independently of the
// encoder under test.
type msg struct{ b []byte }

func newMsg(typ uint16, queue uint16) *msg {
	m := &msg{b: make([]byte, 20)}
	ne.PutUint16(m.b[4:], typ)
	be.PutUint16(m.b[18:], queue)
	return m
}

func (m *msg) attr(t uint16, v ...byte) *msg {
	l := 4 + len(v)
	a := make([]byte, align4(l))
	ne.PutUint16(a[0:], uint16(l))
	ne.PutUint16(a[2:], t)
	copy(a[4:], v)
	m.b = append(m.b, a...)
	return m
}

func (m *msg) u32(t uint16, v uint32) *msg {
	var b [4]byte
	be.PutUint32(b[:], v)
	return m.attr(t, b[:]...)
}

func (m *msg) hdr(id uint32, proto uint16, hook uint8) *msg {
	var b [7]byte
	be.PutUint32(b[0:], id)
	be.PutUint16(b[4:], proto)
	b[6] = hook
	return m.attr(attrPacketHdr, b[:]...)
}

func (m *msg) done() []byte {
	ne.PutUint32(m.b[0:], uint32(len(m.b)))
	return m.b
}

// pktMsg is a typical packet message: header, mark, in/out interfaces,
// and an IPv4/UDP payload of n bytes.
func pktMsg(queue uint16, id uint32, n int) []byte {
	payload := make([]byte, n)
	if n > 0 {
		payload[0] = 0x45
	}
	return newMsg(msgPacket, queue).hdr(id, 0x0800, 2).u32(attrMark, 7).
		u32(attrIfIn, 2).u32(attrIfOut, 3).u32(attrSkbInfo, 0).attr(attrPayload, payload...).done()
}

// sentVerdict is one verdict message parsed back from encoder output.
type sentVerdict struct {
	typ        uint16
	queue      uint16
	verdict    uint32
	id         uint32
	mark       uint32
	hasMark    bool
	payload    []byte
	hasPayload bool
}

// parseVerdicts parses encoder output with the test's own walker.
func parseVerdicts(b []byte) (out []sentVerdict, ok bool) {
	for len(b) > 0 {
		if len(b) < 20 {
			return out, false
		}
		n := int(ne.Uint32(b[0:]))
		if n < 20 || n > len(b) {
			return out, false
		}
		v := sentVerdict{typ: ne.Uint16(b[4:]), queue: be.Uint16(b[18:])}
		if ne.Uint16(b[6:]) != nlmFRequest {
			return out, false
		}
		a := b[20:n]
		for len(a) >= 4 {
			l := int(ne.Uint16(a[0:]))
			if l < 4 || l > len(a) {
				return out, false
			}
			val := a[4:l]
			switch ne.Uint16(a[2:]) {
			case attrVerdictHdr:
				v.verdict, v.id = be.Uint32(val[0:]), be.Uint32(val[4:])
			case attrMark:
				v.mark, v.hasMark = be.Uint32(val), true
			case attrPayload:
				v.payload, v.hasPayload = val, true
			}
			a = a[min(align4(l), len(a)):]
		}
		out = append(out, v)
		b = b[align4(n):]
	}
	return out, true
}
