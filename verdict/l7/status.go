package l7

import "github.com/qguard/qguard/internal/dnswire"

// Status is the outcome of an application-layer extractor. The zero
// value Unset means no extractor ran.
type Status uint8

// Outcomes of DNSQueryName, TLSServerName, HTTPHost and HelloBuffer.Add.
const (
	Unset       Status = iota // no extraction attempted
	Found                     // the name was extracted
	Absent                    // the message is complete and well formed but carries no name
	NeedMore                  // the message is cut short; a later segment may complete it
	NotProtocol               // the payload is not this protocol
	Malformed                 // the payload claims to be this protocol but breaks its rules
	TooLarge                  // the message exceeds the reassembly bound, or no buffer was free
	numStatus
)

var statusNames = [numStatus]string{
	Unset:       "unset",
	Found:       "found",
	Absent:      "absent",
	NeedMore:    "need more data",
	NotProtocol: "not this protocol",
	Malformed:   "malformed",
	TooLarge:    "too large to reassemble",
}

// String returns a short constant description of s.
func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return "unknown status"
}

// MaxNameLen is the longest name an extractor returns: a DNS name in dotted
// form without the trailing dot (RFC 1035 2.3.4 allows 255 bytes on the
// wire, 253 characters in text). Name buffers given to the extractors need
// this capacity; longer names are reported as Malformed.
const MaxNameLen = dnswire.MaxNameLen

// appendLowerName lowercases ASCII letters of name into dst[:n] and returns
// the new length, or -1 when dst's capacity is too small. It drops one
// trailing dot, so "Example.COM." and "example.com" compare equal.
func appendLowerName(dst []byte, n int, name []byte) int {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if n+len(name) > cap(dst) || n+len(name) > MaxNameLen {
		return -1
	}
	dst = dst[:cap(dst)]
	for i, c := range name {
		dst[n+i] = lower(c)
	}
	return n + len(name)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
