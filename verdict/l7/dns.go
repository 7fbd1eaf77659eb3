package l7

import "encoding/binary"

// DNS message header (RFC 1035 4.1.1), 12 bytes, followed by QDCOUNT
// questions (4.1.2): QNAME as labels, then QTYPE(2) and QCLASS(2).
//
//	                                1  1  1  1  1  1
//	  0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|                      ID                       |  0
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |  2
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|                    QDCOUNT                    |  4
//	|                    ANCOUNT                    |  6
//	|                    NSCOUNT                    |  8
//	|                    ARCOUNT                    | 10
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//
// Over TCP each message is preceded by a two-byte length (RFC 1035 4.2.2).
const (
	dnsHeaderLen = 12
	dnsMaxWire   = 255 // longest name on the wire, length bytes included (RFC 1035 2.3.4)
)

// DNSQuestions iterates over the questions of one DNS message. It is a
// value that points into the payload it was built from; the zero value has
// no questions.
type DNSQuestions struct {
	msg   []byte
	off   int
	left  int
	cut   bool // TCP length prefix says more than the segment holds
	ID    uint16
	Flags uint16 // QR, opcode, AA, TC, RD, RA, Z, RCODE
	Count uint16 // QDCOUNT
}

// ParseDNS reads the header of the DNS message in a UDP payload, or in a TCP
// payload when overTCP is set (two-byte length prefix). The status is
// Found when the header is complete.
func ParseDNS(payload []byte, overTCP bool) (DNSQuestions, Status) {
	var q DNSQuestions
	msg := payload
	if overTCP {
		if len(payload) < 2 {
			return q, NeedMore
		}
		l := int(binary.BigEndian.Uint16(payload[0:2]))
		if l < dnsHeaderLen {
			return q, NotProtocol
		}
		msg = payload[2:]
		if len(msg) > l {
			msg = msg[:l]
		} else if len(msg) < l {
			q.cut = true
		}
	}
	if len(msg) < dnsHeaderLen {
		if q.cut {
			return q, NeedMore
		}
		return q, NotProtocol
	}
	q.msg = msg
	q.off = dnsHeaderLen
	q.ID = binary.BigEndian.Uint16(msg[0:2])
	q.Flags = binary.BigEndian.Uint16(msg[2:4])
	q.Count = binary.BigEndian.Uint16(msg[4:6])
	q.left = int(q.Count)
	return q, Found
}

// SetCut tells q whether its message is cut short, for a message that a
// stream reassembler took from a TCP segment with the rest still to come:
// a question that runs out is then NeedMore rather than Malformed.
func (q *DNSQuestions) SetCut(cut bool) { q.cut = cut }

// IsResponse reports whether the QR bit is set.
func (q *DNSQuestions) IsResponse() bool { return q.Flags&0x8000 != 0 }

// Opcode returns the four-bit opcode; 0 is a standard query.
func (q *DNSQuestions) Opcode() uint8 { return uint8(q.Flags>>11) & 0xf }

// Next decodes the next question name into dst (lowercased, dotted, no
// trailing dot; the root is the empty name) and returns it with its type and
// class. The status is Found for a question, Absent after the last one,
// NeedMore when a TCP message is cut inside a question and Malformed
// for a bad name; after anything but Found the iteration is over.
func (q *DNSQuestions) Next(dst []byte) (name []byte, qtype, qclass uint16, st Status) {
	if q.left <= 0 {
		return nil, 0, 0, Absent
	}
	dst = dst[:cap(dst)]
	n, next, st := readDNSName(q.msg, q.off, dst)
	if st == Found && next+4 > len(q.msg) {
		st = NeedMore
	}
	if st == NeedMore && !q.cut {
		st = Malformed // a UDP message or a complete TCP message ran out
	}
	if st != Found {
		q.left = 0
		return nil, 0, 0, st
	}
	qtype = binary.BigEndian.Uint16(q.msg[next : next+2])
	qclass = binary.BigEndian.Uint16(q.msg[next+2 : next+4])
	q.off = next + 4
	q.left--
	return dst[:n], qtype, qclass, Found
}

// DNSQueryName returns the first question name of the DNS message in
// payload, decoded into dst like DNSQuestions.Next. It never allocates.
func DNSQueryName(payload []byte, overTCP bool, dst []byte) ([]byte, Status) {
	q, st := ParseDNS(payload, overTCP)
	if st != Found {
		return nil, st
	}
	name, _, _, st := q.Next(dst)
	return name, st
}

// readDNSName decodes the name at msg[off:] into dst and returns its length
// and the offset after it. Compression pointers (RFC 1035 4.1.4) may point
// anywhere in the message, forwards too, since resolvers such as dnsmasq
// follow them; only the number of jumps is bounded. A walk that takes more
// jumps than the message has two-byte pointer positions has visited one
// pointer twice and would loop for ever, so the bound rejects exactly the
// loops and accepts every name a server can finish reading. NeedMore
// means the name ran past msg.
func readDNSName(msg []byte, off int, dst []byte) (n, next int, st Status) {
	pos, next, wire, jumps := off, -1, 0, 0
	for {
		if pos >= len(msg) {
			return 0, 0, NeedMore
		}
		l := int(msg[pos])
		switch l & 0xc0 {
		case 0x00:
			if l == 0 {
				if next < 0 {
					next = pos + 1
				}
				return n, next, Found
			}
			if pos+1+l > len(msg) {
				return 0, 0, NeedMore
			}
			wire += 1 + l
			if wire >= dnsMaxWire {
				return 0, 0, Malformed
			}
			if n, st = appendLabel(dst, n, msg[pos+1:pos+1+l]); st != Found {
				return 0, 0, st
			}
			pos += 1 + l
		case 0xc0:
			if pos+2 > len(msg) {
				return 0, 0, NeedMore
			}
			if jumps++; jumps > len(msg)/2 {
				return 0, 0, Malformed // a pointer loop
			}
			if next < 0 {
				next = pos + 2
			}
			pos = int(binary.BigEndian.Uint16(msg[pos:pos+2]) & 0x3fff)
		default:
			return 0, 0, Malformed // 0x40 extended and 0x80 reserved label types
		}
	}
}

// appendLabel adds one label to the dotted name in dst[:n]. A label holding
// a dot is refused: printed dotted, it would read as two labels and match
// names the resolver never looks up.
func appendLabel(dst []byte, n int, label []byte) (int, Status) {
	need := len(label)
	if n > 0 {
		need++
	}
	if n+need > len(dst) || n+need > MaxNameLen {
		return 0, Malformed
	}
	if n > 0 {
		dst[n] = '.'
		n++
	}
	for _, c := range label {
		if c == '.' {
			return 0, Malformed
		}
		dst[n] = lower(c)
		n++
	}
	return n, Found
}
