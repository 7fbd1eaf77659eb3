package packet

// Reason says why Decode rejected a packet. The zero value ReasonNone means
// the packet decoded; every other value is a constant that costs nothing to
// produce, because hostile traffic must not make the decoder build errors.
type Reason uint8

// Reasons set in Packet.Invalid by Decode.
const (
	ReasonNone          Reason = iota // the packet decoded
	ReasonEmpty                       // zero-length buffer
	ReasonBadVersion                  // IP version neither 4 nor 6
	ReasonTruncated                   // a header runs past the captured bytes
	ReasonBadIHL                      // IPv4 header length below 20 bytes
	ReasonBadLength                   // IP total/payload length below the header length
	ReasonBadIPOptions                // IPv4 option list malformed
	ReasonBadFragment                 // fragment beyond 65535 bytes or overlapping a TCP header (RFC 1858)
	ReasonTinyFragment                // first fragment too short to hold the transport header
	ReasonBadExtHeader                // IPv6 extension header out of order or repeated
	ReasonBadTCPOffset                // TCP data offset below 5 words or past the packet
	ReasonBadUDPLength                // UDP length below 8 or past the IP payload
	ReasonBadDCCPOffset               // DCCP data offset below 3 words or past the packet
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:          "none",
	ReasonEmpty:         "empty packet",
	ReasonBadVersion:    "bad IP version",
	ReasonTruncated:     "truncated header",
	ReasonBadIHL:        "bad IPv4 header length",
	ReasonBadLength:     "bad IP length",
	ReasonBadIPOptions:  "bad IPv4 options",
	ReasonBadFragment:   "bad fragment",
	ReasonTinyFragment:  "tiny first fragment",
	ReasonBadExtHeader:  "bad IPv6 extension header",
	ReasonBadTCPOffset:  "bad TCP data offset",
	ReasonBadUDPLength:  "bad UDP length",
	ReasonBadDCCPOffset: "bad DCCP data offset",
}

// String returns a short constant description of r.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown reason"
}
