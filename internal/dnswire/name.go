package dnswire

import "encoding/binary"

// DNS message header (RFC 1035 4.1.1): 12 bytes, then the questions
// (4.1.2) and the resource records (4.1.3), each starting with a name.
//
//	                                1  1  1  1  1  1
//	  0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//	|                      ID                       |  0
//	|QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |  2
//	|                    QDCOUNT                    |  4
//	|                    ANCOUNT                    |  6
//	|                    NSCOUNT                    |  8
//	|                    ARCOUNT                    | 10
//	+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//
// A name is a sequence of labels, each a length byte (top bits 00, at
// most 63) and that many bytes, ended by a zero length byte or by a
// two-byte pointer (top bits 11) to the rest of the name elsewhere in the
// message. Label types 01 and 10 are reserved (RFC 6891 retired 01).
const (
	HeaderLen = 12
	// MaxNameLen is the longest dotted name read (RFC 1035 2.3.4: 255
	// bytes on the wire, length bytes included, at most 253 printed).
	MaxNameLen = 253
	maxWire    = 255
)

// Result says how a name read ended. The zero Result is invalid on purpose.
type Result uint8

// ReadName results.
const (
	_     Result = iota
	OK           // a whole name
	Short        // the name runs past the message (a TCP message may still be cut)
	Bad          // a pointer loop, a reserved label type, a dot inside a label, or too long
)

// ReadName decodes the name at msg[off:] into dst (lowercased, dotted, no
// trailing dot; the root is the empty name) and returns its length and the
// offset after it in msg. Pointers may go anywhere in the message, forwards
// too, since resolvers such as dnsmasq follow them; only the number of
// jumps is bounded. A walk that takes more jumps than the message has
// two-byte pointer positions has visited one pointer twice and would loop
// for ever, so the bound refuses exactly the loops and accepts every name
// a server can finish reading. A name longer than dst, or than
// MaxNameLen, is Bad.
func ReadName(msg []byte, off int, dst []byte) (n, next int, r Result) {
	pos, next, wire, jumps := off, -1, 0, 0
	for {
		if pos >= len(msg) {
			return 0, 0, Short
		}
		l := int(msg[pos])
		switch l & 0xc0 {
		case 0x00:
			if l == 0 {
				if next < 0 {
					next = pos + 1
				}
				return n, next, OK
			}
			if pos+1+l > len(msg) {
				return 0, 0, Short
			}
			if wire += 1 + l; wire >= maxWire {
				return 0, 0, Bad
			}
			if n = appendLabel(dst, n, msg[pos+1:pos+1+l]); n < 0 {
				return 0, 0, Bad
			}
			pos += 1 + l
		case 0xc0:
			if pos+2 > len(msg) {
				return 0, 0, Short
			}
			if jumps++; jumps > len(msg)/2 {
				return 0, 0, Bad // a pointer loop
			}
			if next < 0 {
				next = pos + 2
			}
			pos = int(binary.BigEndian.Uint16(msg[pos:pos+2]) & 0x3fff)
		default:
			return 0, 0, Bad // the reserved label types 01 and 10
		}
	}
}

// appendLabel adds one label, lowercased, to the dotted name in dst[:n]
// and returns the new length, or -1 when it does not fit. A label holding
// a dot is refused: printed dotted, it would read as two labels and match
// names the resolver never looks up.
func appendLabel(dst []byte, n int, label []byte) int {
	need := len(label)
	if n > 0 {
		need++
	}
	if n+need > len(dst) || n+need > MaxNameLen {
		return -1
	}
	if n > 0 {
		dst[n] = '.'
		n++
	}
	for _, c := range label {
		switch {
		case c == '.':
			return -1
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst[n] = c
		n++
	}
	return n
}

// SkipName returns the offset after the name at msg[off:] without
// decoding it or following its pointer; ok is false when the name runs
// past msg, uses a reserved label type or is too long on the wire.
func SkipName(msg []byte, off int) (next int, ok bool) {
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
