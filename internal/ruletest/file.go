package ruletest

import (
	"net/netip"
	"time"
)

// Expect is a case's expected outcome, and a probe's observed one.
type Expect uint8

// Outcomes. The zero value is invalid on purpose.
const (
	ExpectUnset Expect = iota
	Delivered
	Dropped
	Rejected
	Modified
	// Errored is never expected: the probe failed in a way that is none of
	// the above (a TLS handshake error, a wrong answer, a local error).
	Errored
)

var expectNames = [...]string{"unset", "delivered", "dropped", "rejected", "modified", "error"}

func (e Expect) String() string {
	if int(e) < len(expectNames) {
		return expectNames[e]
	}
	return "invalid"
}

// Kind is what a case sends.
type Kind uint8

// Kinds of traffic. The zero value is invalid on purpose.
const (
	KindUnset Kind = iota
	KindTCP
	KindUDP
	KindICMP
	KindDNS
	KindTLS
	KindHTTP
)

var kindNames = [...]string{"unset", "tcp", "udp", "icmp", "dns", "tls", "http"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Send describes the traffic of one case.
type Send struct {
	Kind Kind
	Port uint16 // tcp, udp, dns, tls, http
	// SPort is the client's source port (tcp, udp); 0 lets the kernel
	// choose an ephemeral one.
	SPort uint16
	Data  []byte // tcp (optional: echoed back), udp (echoed back)
	// DNS
	Name    string
	QType   uint16 // dnsmessage.Type
	OverTCP bool
	// TLS
	SNI string
	// HTTP
	Host, Path string
	// First is sent on the same socket or connection before the case's own
	// message, and its answer awaited: a DNS query for this name, an HTTP
	// request for this host (keep-alive). The case's outcome is its own
	// message's.
	First string
	// Together sends First and the case's message in one write (DNS over
	// TCP: two messages in a segment; HTTP: pipelining).
	Together bool
	// Split sends a DNS-over-TCP query's length prefix in a segment of its
	// own.
	Split bool
	// Records cuts the TLS ClientHello into this many records, sent in one
	// write.
	Records int
	// ExtHeaders sends the UDP datagram over IPv6 behind this many
	// destination options headers, crafted on a raw socket.
	ExtHeaders int
}

// Proto is the transport protocol the probe uses.
func (s *Send) Proto() string {
	switch s.Kind {
	case KindUDP:
		return "udp"
	case KindDNS:
		if s.OverTCP {
			return "tcp"
		}
		return "udp"
	case KindICMP:
		return "icmp"
	}
	return "tcp"
}

// Metric is one expected counter delta.
type Metric struct {
	Name    string
	Delta   int64
	AtLeast bool // ">= Delta" rather than "== Delta"
	Line    int
	Col     int
}

// Case is one probe and its expectation.
type Case struct {
	Name      string
	Line, Col int
	Send      Send
	From      netip.Addr // zero: the client's main address of Family
	// FromFirewall sends from the firewall namespace itself (`from:
	// firewall`): the packets pass qguard's output hook, where the socket's
	// UID, GID and mark are known.
	FromFirewall bool
	UID, GID     *uint32 // socket owner for FromFirewall (setfsuid/setfsgid)
	SocketMark   uint32  // SO_MARK for FromFirewall
	Family       int     // 4 or 6
	Expect       Expect
	Rule         string // "" when not checked; "default" for the policy default
	RuleLine     int    // position of the rule value, for errors found later
	RuleCol      int
	Mark         uint32 // with HasMark: the mark "modified" must observe
	HasMark      bool
	Metrics      []Metric
	// Logged, when set, says whether qguard must (true) or must not (false)
	// write a decision log line for the case's flow (the rule option log).
	Logged *bool
	Repeat int // send this many probes; the expectation applies to the last
}

// File is a parsed test file.
type File struct {
	Path string
	// Config is the YAML handed to the config package: the test file
	// itself, whose policy, queue and rules sections it reads (so config
	// errors keep the test file's lines and columns), or the content of
	// policy_file.
	Config     []byte
	ConfigName string
	inline     bool // Config is the test file: parse only its config sections
	ExtraAddrs []netip.Addr
	Timeout    time.Duration
	Parallel   bool
	Cases      []Case
	// Mode, when set, overrides the file's rules.mode (Options.Mode).
	Mode string
}
