package verdict

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/qguard/qguard/proto"
)

// Policy is an ordered list of named rules and the actions for packets no
// rule matches. Package config parses it from YAML; Compile turns it into
// the form the pipeline evaluates. The first matching rule decides.
type Policy struct {
	Default Action // when no rule matches; required
	// Invalid is the action for packets that do not decode. ActionUnset
	// means drop when any rule (or its rate limit) or Default drops or
	// rejects, and accept only when the policy accepts everything: a packet
	// the rules cannot be evaluated on must not get past a rule that could
	// have matched it.
	Invalid Action
	// Sets are named prefix sets that rules reference by name
	// (Match.SrcSets, Match.DstSets). One set used by many rules is indexed
	// once.
	Sets  map[string][]netip.Prefix
	Rules []Rule
	// L7Packets bounds how many packets carrying data a flow may send
	// while the L7 data (DNS name, TLS server name, HTTP host, payload) that
	// a rule needs is still incomplete. 0 means DefaultL7Packets. Packets
	// without payload (handshake, empty ACKs) do not count.
	L7Packets int
	// L7Undecided is the action for a flow (or, for DNS and HTTP, a
	// message) that a rule could match but whose L7 data cannot be read:
	// still incomplete when the L7Packets window closes, malformed, larger
	// than what is reassembled, or no reassembly buffer free. ActionUnset
	// means ActionDrop: treating such data as no match would let a client
	// skip a rule by choosing to send it.
	L7Undecided Action
}

// DefaultL7Packets is Policy.L7Packets when it is zero: enough for a TCP
// handshake and a ClientHello in a few segments.
const DefaultL7Packets = 8

// Rule is one named rule: when Match matches, Action applies with the
// options set here.
type Rule struct {
	Name    string
	Match   Match
	Action  Action
	Mark    uint32 // set this packet mark when SetMark
	SetMark bool
	// Log asks for a log line when the rule decides a flow (subject to the
	// pipeline's log rate limit).
	Log       bool
	RateLimit *RateLimit // nil: no rate limit
	// Flow decides the whole flow: Decision.Offload is set so the kernel
	// handles its later packets.
	Flow bool
	// BlockSource puts the source in the kernel block set for this long.
	BlockSource time.Duration
	// AlertAs is what an ActionAlert rule trials: ActionDrop (also when
	// unset) or ActionReject. Only with ActionAlert.
	AlertAs Action
}

// Match holds a rule's matchers. Every non-empty matcher must match; within
// a matcher any listed value may match. An empty Match matches every packet.
type Match struct {
	Family   uint8   // 4 or 6; 0 matches both
	Protos   []uint8 // IP protocol numbers (ProtoTCP, ...)
	Src, Dst []netip.Prefix
	// SrcSets and DstSets name Policy.Sets; they add to Src and Dst.
	SrcSets, DstSets   []string
	SrcPorts, DstPorts []PortRange // match TCP, UDP, UDP-Lite, SCTP and DCCP only
	// InIfaces and OutIfaces are interface names, resolved to indexes by
	// Compile; InIfIndexes and OutIfIndexes match indexes directly.
	InIfaces, OutIfaces       []string
	InIfIndexes, OutIfIndexes []uint32
	Mark                      *MarkMatch
	UIDs, GIDs                []IDRange // need the queue's uid_gid option
	CT                        CTStates  // need the queue's conntrack option; 0: any
	// DNS matches DNS query names: "example.com" or "*.example.com". Only
	// DNS flows carry them: a rule with DNS and no DstPorts matches
	// destination port 53 only (UDP or TCP); with DstPorts, those ports
	// carry DNS (add 5353 for mDNS).
	DNS      []string
	SNI      []string // TLS ClientHello server names, also of QUIC Initials (UDP 443 and the rule's dports), same syntax
	HTTPHost []string // HTTP/1.x Host header, same syntax
	Payload  [][]byte // byte patterns anywhere in the first payload
	// DstName and SrcName match a packet whose destination (source)
	// address a DNS answer seen by qguard gave for a name in the list,
	// same syntax as DNS. They need CompileOptions.Names (package names);
	// without it they never match.
	DstName, SrcName []string
}

// PortRange is an inclusive range of ports; a single port has Lo == Hi.
// It is proto.PortRange, the one port range config, rules and verdict share.
type PortRange = proto.PortRange

// IDRange is an inclusive range of user or group IDs.
type IDRange struct{ Lo, Hi uint32 }

// String returns "lo-hi", or "lo" for a single id, as the configuration
// writes it (Trace shows rules' uid and gid ranges this way).
func (r IDRange) String() string {
	if r.Lo == r.Hi {
		return strconv.FormatUint(uint64(r.Lo), 10)
	}
	return strconv.FormatUint(uint64(r.Lo), 10) + "-" + strconv.FormatUint(uint64(r.Hi), 10)
}

// MarkMatch matches packets whose mark ANDed with Mask equals Value.
type MarkMatch struct{ Value, Mask uint32 }

// CTStates is a set of conntrack states.
type CTStates uint8

// Conntrack state bits.
const (
	CTStateNew CTStates = 1 << iota
	CTStateEstablished
	CTStateRelated
	CTStateInvalid // no conntrack entry
	CTStateUntracked
)

var ctStateNames = []struct {
	bit  CTStates
	name string
}{{CTStateNew, "new"}, {CTStateEstablished, "established"}, {CTStateRelated, "related"},
	{CTStateInvalid, "invalid"}, {CTStateUntracked, "untracked"}}

// ParseCTState returns the bit for a state name ("new", "established",
// "related", "invalid", "untracked").
func ParseCTState(s string) (CTStates, bool) {
	for _, n := range ctStateNames {
		if n.name == s {
			return n.bit, true
		}
	}
	return 0, false
}

// String lists the states in s separated by commas.
func (s CTStates) String() string {
	out := ""
	for _, n := range ctStateNames {
		if s&n.bit != 0 {
			if out != "" {
				out += ","
			}
			out += n.name
		}
	}
	return out
}

// Rate is a number of events per period, as in "100/s".
type Rate struct {
	Events float64
	Per    time.Duration
}

// PerSecond returns the rate in events per second (0 for the zero Rate).
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return r.Events / r.Per.Seconds()
}

// String formats r as "100/s".
func (r Rate) String() string {
	unit := r.Per.String()
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	return strconv.FormatFloat(r.Events, 'f', -1, 64) + "/" + unit
}

// RateKey says what a rate limit counts separately.
type RateKey uint8

// Rate limit keys.
const (
	RateKeyUnset  RateKey = iota
	RateKeySource         // one bucket per source address
	RateKeyFlow           // one bucket per flow (both directions)
	RateKeyRule           // one bucket for the whole rule
)

var rateKeyNames = []string{"unset", "source", "flow", "rule"}

// String returns the key's name as written in a policy file.
func (k RateKey) String() string {
	if int(k) < len(rateKeyNames) {
		return rateKeyNames[k]
	}
	return "unknown"
}

// ParseRateKey returns the key named s ("source", "flow", "rule").
func ParseRateKey(s string) (RateKey, bool) {
	for i := 1; i < len(rateKeyNames); i++ {
		if rateKeyNames[i] == s {
			return RateKey(i), true
		}
	}
	return RateKeyUnset, false
}

// RateLimit is a token bucket: Rate tokens are added per second up to Burst;
// each packet takes one; a packet finding the bucket empty gets Exceed.
type RateLimit struct {
	Rate   Rate
	Burst  int     // bucket size; 0 means the rate per second rounded up, at least 1
	Key    RateKey // RateKeyUnset means RateKeySource
	Exceed Action  // ActionUnset means ActionDrop
	// MaxKeys bounds the bucket table; the least recently used key is
	// evicted when it is full. 0 means DefaultRateKeys.
	MaxKeys int
}

// DefaultRateKeys is RateLimit.MaxKeys when it is zero.
const DefaultRateKeys = 65536
