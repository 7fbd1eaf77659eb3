package proto

import "strconv"

// IP protocol numbers (IPPROTO_* in netinet/in.h, IANA "Assigned Internet
// Protocol Numbers").
const (
	ICMP    = 1   // RFC 792
	TCP     = 6   // RFC 9293
	UDP     = 17  // RFC 768
	DCCP    = 33  // RFC 4340
	GRE     = 47  // RFC 2784
	ESP     = 50  // RFC 4303
	AH      = 51  // RFC 4302
	ICMPv6  = 58  // RFC 4443
	SCTP    = 132 // RFC 9260
	UDPLite = 136 // RFC 3828
)

// names is the one table of protocol names, in the order error messages
// list them. Names are lower case and matched exactly.
var names = [...]struct {
	num  uint8
	name string
}{
	{TCP, "tcp"}, {UDP, "udp"}, {ICMP, "icmp"}, {ICMPv6, "icmpv6"}, {SCTP, "sctp"},
	{UDPLite, "udplite"}, {DCCP, "dccp"}, {GRE, "gre"}, {ESP, "esp"}, {AH, "ah"},
}

// aliases are other spellings Number accepts: "ipv6-icmp" is how nft and
// /etc/protocols name 58.
var aliases = map[string]uint8{"ipv6-icmp": ICMPv6}

// Number returns the protocol number of name ("tcp", "dccp", ...; see
// Names), false for a name it does not know.
func Number(name string) (uint8, bool) {
	for _, e := range names {
		if e.name == name {
			return e.num, true
		}
	}
	n, ok := aliases[name]
	return n, ok
}

// Name returns the name of protocol n, "" for a number without one.
func Name(n uint8) string {
	for _, e := range names {
		if e.num == n {
			return e.name
		}
	}
	return ""
}

// String returns Name(n), or "proto N" for a number without a name.
func String(n uint8) string {
	if s := Name(n); s != "" {
		return s
	}
	return "proto " + strconv.Itoa(int(n))
}

// Names returns every name Number accepts except aliases, in a fixed
// order, for error messages and documentation.
func Names() []string {
	out := make([]string, len(names))
	for i, e := range names {
		out[i] = e.name
	}
	return out
}
