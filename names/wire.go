package names

import "github.com/qguard/qguard/internal/dnswire"

// A DNS message (RFC 1035 4.1) is a 12-byte header (drawn in
// internal/dnswire, which also reads the names), QDCOUNT questions
// (4.1.2: QNAME, QTYPE(2), QCLASS(2)) and ANCOUNT resource records
// (4.1.3): NAME, TYPE(2), CLASS(2), TTL(4), RDLENGTH(2), RDATA.
const (
	headerLen = dnswire.HeaderLen
	// MaxNameLen is the longest dotted name decoded (RFC 1035 2.3.4: 255
	// bytes on the wire, at most 253 printed).
	MaxNameLen = dnswire.MaxNameLen
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
