package names

import "encoding/binary"

// DNS message header (RFC 1035 4.1.1), 12 bytes, then QDCOUNT questions
// (4.1.2: QNAME, QTYPE(2), QCLASS(2)) and ANCOUNT resource records
// (4.1.3):
//
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|                      ID                       |  0
//	|QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |  2
//	|                    QDCOUNT                    |  4
//	|                    ANCOUNT                    |  6
//	|                    NSCOUNT                    |  8
//	|                    ARCOUNT                    | 10
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//
// A resource record: NAME, TYPE(2), CLASS(2), TTL(4), RDLENGTH(2), RDATA.
const (
	headerLen = 12
	// MaxNameLen is the longest dotted name decoded (RFC 1035 2.3.4: 255
	// bytes on the wire, at most 253 printed).
	MaxNameLen = 253
	maxWire    = 255
)

// Record types and the class this package reads.
const (
	TypeA     = 1
	TypeCNAME = 5
	TypeAAAA  = 28
	ClassIN   = 1
)

// Result says what a parse found. The zero Result is invalid on purpose.
type Result uint8

// Parse results.
const (
	_           Result = iota
	OK                 // a message of the kind asked for
	NotDNS             // too short for a header, or the wrong direction (QR)
	Unsupported        // not a standard query/response with one A or AAAA question of class IN
	Malformed          // a name, record or count runs past the message or is invalid
)

var resultNames = [...]string{"invalid", "ok", "not dns", "unsupported", "malformed"}

func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "invalid"
}

// readName decodes the name at msg[off:] into dst (lowercased, dotted, no
// trailing dot) and returns its length and the offset after it. Pointers
// (RFC 1035 4.1.4) may go anywhere in the message; more jumps than the
// message has pointer positions means a loop. ok is false for a name that
// runs past msg, loops, uses a reserved label type, holds a dot inside a
// label (printed, it would read as two labels) or is too long.
func readName(msg []byte, off int, dst *[MaxNameLen]byte) (n, next int, ok bool) {
	pos, next, wire, jumps := off, -1, 0, 0
	for {
		if pos >= len(msg) {
			return 0, 0, false
		}
		l := int(msg[pos])
		switch l & 0xc0 {
		case 0x00:
			if l == 0 {
				if next < 0 {
					next = pos + 1
				}
				return n, next, true
			}
			if pos+1+l > len(msg) {
				return 0, 0, false
			}
			if wire += 1 + l; wire >= maxWire {
				return 0, 0, false
			}
			if n, ok = appendLabel(dst, n, msg[pos+1:pos+1+l]); !ok {
				return 0, 0, false
			}
			pos += 1 + l
		case 0xc0:
			if pos+2 > len(msg) {
				return 0, 0, false
			}
			if jumps++; jumps > len(msg)/2 {
				return 0, 0, false
			}
			if next < 0 {
				next = pos + 2
			}
			pos = int(binary.BigEndian.Uint16(msg[pos:pos+2]) & 0x3fff)
		default:
			return 0, 0, false
		}
	}
}

func appendLabel(dst *[MaxNameLen]byte, n int, label []byte) (int, bool) {
	need := len(label)
	if n > 0 {
		need++
	}
	if n+need > MaxNameLen {
		return 0, false
	}
	if n > 0 {
		dst[n] = '.'
		n++
	}
	for _, c := range label {
		switch {
		case c == '.':
			return 0, false
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		dst[n] = c
		n++
	}
	return n, true
}

// skipName returns the offset after the name at msg[off:] without decoding
// it, false when it runs past msg.
func skipName(msg []byte, off int) (int, bool) {
	for wire := 0; off < len(msg); {
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xc0 == 0xc0:
			if off+2 > len(msg) {
				return 0, false
			}
			return off + 2, true
		case l&0xc0 != 0:
			return 0, false
		}
		if wire += 1 + l; wire >= maxWire {
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}
