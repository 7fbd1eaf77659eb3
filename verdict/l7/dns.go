package l7

import (
	"encoding/binary"

	"github.com/qguard/qguard/internal/dnswire"
)

// A DNS message (RFC 1035 4.1) is a 12-byte header (drawn in
// internal/dnswire, which also reads the names) followed by QDCOUNT
// questions (4.1.2): QNAME as labels, then QTYPE(2) and QCLASS(2). Over
// TCP each message is preceded by a two-byte length (RFC 1035 4.2.2).
const dnsHeaderLen = dnswire.HeaderLen

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
	n, next, r := dnswire.ReadName(q.msg, q.off, dst)
	st = dnsStatus[r]
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

// dnsStatus is what a name read means for an extractor: a name cut short
// may be completed by a later segment of a TCP message.
var dnsStatus = [...]Status{dnswire.OK: Found, dnswire.Short: NeedMore, dnswire.Bad: Malformed}
