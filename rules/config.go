package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/proto"
)

// Hook is one netfilter hook qguard attaches a base chain to.
type Hook struct {
	// Name is prerouting, input, forward, output or postrouting.
	Name string
	// Priority orders the chain among others at the same hook (filter is 0).
	Priority int32
}

// PortRange is an inclusive range of ports; Lo == Hi is one port. It is
// proto.PortRange, the port range config and verdict use too.
type PortRange = proto.PortRange

// Steer selects the traffic sent to the queue. Empty fields match all.
type Steer struct {
	// Protocols by name (any proto.Number knows, in any case: tcp, udp,
	// icmp, icmpv6 or ipv6-icmp, sctp, udplite, dccp, gre, esp, ah) or
	// number (0-255).
	Protocols []string
	// DPorts and SPorts match transport ports. They only apply to protocols
	// with ports (tcp, udp, sctp, udplite): with ports configured, other
	// protocols in Protocols are not queued.
	DPorts, SPorts []PortRange
	// InIfs and OutIfs are interface names (exact, no wildcards).
	InIfs, OutIfs []string
	// Sources and Destinations are address prefixes, IPv4 and IPv6 mixed.
	// A family without any prefix in a non-empty list is not queued.
	Sources, Destinations []netip.Prefix
	// NewOnly queues only packets of connections in conntrack state new.
	NewOnly bool
}

// Marks is qguard's part of the packet and conntrack mark space. Verdicts
// that need the kernel's help return NF_REPEAT with one of these values in
// Mask.
type Marks struct {
	Mask, AcceptFlow, DropFlow, Reject uint32
}

// Set returns mark with its bits under m.Mask replaced by v (also masked):
// the mark a verdict should carry to leave other users' bits alone.
func (m Marks) Set(mark, v uint32) uint32 { return mark&^m.Mask | v&m.Mask }

// DefaultMarks are the marks used when Config.Marks.Mask is zero.
var DefaultMarks = Marks{Mask: 0x00ff0000, AcceptFlow: 0x00010000, DropFlow: 0x00020000, Reject: 0x00030000}

// QueueImpl selects how rules queue packets.
type QueueImpl uint8

const (
	// QueueAuto uses the native expression when Probe finds it, else compat.
	QueueAuto QueueImpl = iota
	// QueueNative is the nftables queue expression (CONFIG_NFT_QUEUE).
	QueueNative
	// QueueCompat is the xtables NFQUEUE target through nft_compat.
	QueueCompat
)

func (q QueueImpl) String() string {
	switch q {
	case QueueAuto:
		return "auto"
	case QueueNative:
		return "native"
	case QueueCompat:
		return "compat"
	}
	return "QueueImpl(" + strconv.Itoa(int(q)) + ")"
}

// Config describes the table qguard installs. New(nil) uses DefaultConfig.
type Config struct {
	// Table names qguard's inet table (default "qguard").
	Table string
	// Hooks get one base chain each (default forward, priority 0).
	Hooks []Hook
	Steer Steer
	// QueueNum is the first queue; QueueCount queues (default 1) are used,
	// load-balanced by flow hash, or by CPU with Fanout.
	QueueNum, QueueCount uint16
	Fanout               bool
	// Bypass lets packets through when no handler is bound (fail-open);
	// without it they are dropped (fail-closed). SteerAway replaces the queue
	// rule with accept only when Bypass is set.
	Bypass bool
	// Marks zero means DefaultMarks.
	Marks Marks
	// Offload copies AcceptFlow/DropFlow verdicts into the conntrack mark and
	// decides later packets of the flow in the kernel.
	Offload bool
	// Conntrack keeps connection tracking on in the namespace when no rule
	// of the table needs it: for the queue's conntrack metadata and the
	// flow records (conntrack destroy events). Without it, a forward-only
	// table without Offload and kernel-first has no ct expression, and
	// forwarding pays for no tracking.
	Conntrack bool
	// BlockSetTimeout is the default lifetime of block set entries (10m).
	BlockSetTimeout time.Duration
	// FlowTimeout is how long a flow decided DropFlow stays in the drop-flow
	// sets, for flows whose first packet was dropped before conntrack
	// confirmed them (default 2m).
	FlowTimeout time.Duration
	// Queue forces an implementation; QueueAuto probes.
	Queue QueueImpl
	// NetNS is an open network namespace file descriptor to work in; 0 is
	// the caller's namespace.
	NetNS int
	// Mode KernelFirst compiles Policy into the table (see compile.go);
	// QueueAll, the zero value, queues everything steered.
	Mode   Mode
	Policy *Policy
	// NamePorts, when set, queues every TCP and UDP packet from or to these
	// ports ahead of the steering and the kernel policy (whatever
	// Steer's protocols, ports, prefixes and NewOnly say; its interfaces
	// apply): the DNS queries and answers user space reads for the
	// dst_name and src_name matchers (package names).
	NamePorts []PortRange
	// Names is the binding table the name sets of a new generation are
	// filled from (mode KernelFirst, rules with DstNames or SrcNames).
	Names *names.Table
}

// DefaultConfig is the configuration of examples/qguard.yaml's rules section.
func DefaultConfig() *Config {
	return &Config{
		Table:      "qguard",
		Hooks:      []Hook{{Name: "forward", Priority: 0}},
		Steer:      Steer{Protocols: []string{"tcp", "udp", "icmp", "icmpv6"}},
		QueueCount: 1, Bypass: true, Offload: true,
		Marks: DefaultMarks, BlockSetTimeout: 10 * time.Minute, FlowTimeout: 2 * time.Minute,
	}
}

// hookNames are the hooks Config.Hooks may name, indexed by NF_INET_*
// (linux/netfilter.h).
var hookNames = [...]string{"prerouting", "input", "forward", "output", "postrouting"}

// hookNums are NF_INET_* by hook name.
var hookNums = func() map[string]uint32 {
	m := make(map[string]uint32, len(hookNames))
	for i, n := range hookNames {
		m[n] = uint32(i)
	}
	return m
}()

// HookNames returns the hooks Config.Hooks may name, in the kernel's order.
func HookNames() []string { return hookNames[:] }

// portProtos are the protocols whose first four transport bytes are ports
// and that the rules match ports of.
var portProtos = map[uint8]bool{proto.TCP: true, proto.UDP: true, proto.SCTP: true, proto.UDPLite: true}

// Validate reports what New would refuse in c before it touches the
// kernel: the check `qguard check` shares with `qguard run`.
func (c *Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize returns a validated copy with defaults filled in.
func (c *Config) normalize() (*Config, error) {
	if c == nil {
		return DefaultConfig(), nil
	}
	n := *c
	if n.Table == "" {
		n.Table = "qguard"
	}
	if len(n.Table) > 255 || strings.ContainsRune(n.Table, 0) {
		return nil, fieldErr("table", fmt.Errorf("%w: table name %q", ErrInvalidConfig, n.Table))
	}
	if len(n.Hooks) == 0 {
		n.Hooks = []Hook{{Name: "forward"}}
	}
	if n.QueueCount == 0 {
		n.QueueCount = 1
	}
	if n.Marks.Mask == 0 {
		n.Marks = DefaultMarks
	}
	if n.BlockSetTimeout == 0 {
		n.BlockSetTimeout = 10 * time.Minute
	}
	if n.FlowTimeout == 0 {
		n.FlowTimeout = 2 * time.Minute
	}
	if n.Queue > QueueCompat {
		return nil, fmt.Errorf("%w: queue implementation %d", ErrInvalidConfig, n.Queue)
	}
	if err := checkNamePorts(n.NamePorts); err != nil {
		return nil, err
	}
	if n.Mode > KernelFirst {
		return nil, fmt.Errorf("%w: mode %d", ErrInvalidConfig, n.Mode)
	}
	if n.Mode == KernelFirst {
		if n.Policy == nil {
			return nil, fmt.Errorf("%w: mode kernel-first needs a policy", ErrInvalidConfig)
		}
		if err := n.Policy.check(); err != nil {
			return nil, err
		}
	}
	for _, check := range []func() error{n.checkHooks, n.checkQueue, n.checkMarks, n.checkSteer} {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return &n, nil
}

func (c *Config) checkHooks() error {
	seen := map[string]bool{}
	for i, h := range c.Hooks {
		if _, ok := hookNums[h.Name]; !ok {
			return fieldErr("hooks", fmt.Errorf("%w: hooks[%d]: unknown hook %q (want prerouting, input, forward, output or postrouting)", ErrInvalidConfig, i, h.Name))
		}
		if seen[h.Name] {
			return fieldErr("hooks", fmt.Errorf("%w: hooks[%d]: hook %q listed twice", ErrInvalidConfig, i, h.Name))
		}
		seen[h.Name] = true
	}
	return nil
}

func (c *Config) checkQueue() error {
	if uint32(c.QueueNum)+uint32(c.QueueCount)-1 > 65535 {
		return fmt.Errorf("%w: queues %d..%d exceed 65535", ErrInvalidConfig, c.QueueNum, uint32(c.QueueNum)+uint32(c.QueueCount)-1)
	}
	if c.Fanout && c.QueueCount < 2 {
		return fmt.Errorf("%w: fanout needs a queue count of at least 2", ErrInvalidConfig)
	}
	if c.BlockSetTimeout < time.Millisecond || c.FlowTimeout < time.Millisecond {
		return fmt.Errorf("%w: block timeout %v or flow timeout %v is below 1ms", ErrInvalidConfig, c.BlockSetTimeout, c.FlowTimeout)
	}
	return nil
}

func (c *Config) checkMarks() error {
	m := c.Marks
	vals := []struct {
		name string
		v    uint32
	}{{"accept_flow", m.AcceptFlow}, {"drop_flow", m.DropFlow}, {"reject", m.Reject}}
	for i, a := range vals {
		if a.v == 0 || a.v&^m.Mask != 0 {
			return fieldErr("marks."+a.name, fmt.Errorf("%w: marks.%s %#x must be non-zero and inside mask %#x", ErrInvalidConfig, a.name, a.v, m.Mask))
		}
		for _, b := range vals[:i] {
			if a.v == b.v {
				return fieldErr("marks."+a.name, fmt.Errorf("%w: marks.%s and marks.%s are both %#x", ErrInvalidConfig, b.name, a.name, a.v))
			}
		}
	}
	return nil
}

func (c *Config) checkSteer() error {
	s := &c.Steer
	for i, p := range s.Protocols {
		if _, err := protoNumber(p); err != nil {
			return fieldErr("protocols", fmt.Errorf("%w: protocols[%d]: %v", ErrInvalidConfig, i, err))
		}
	}
	if len(s.DPorts)+len(s.SPorts) > 0 && len(s.Protocols) > 0 && len(c.portProtocols()) == 0 {
		return fieldErr("protocols", fmt.Errorf("%w: ports given but none of protocols %v has ports (tcp, udp, sctp, udplite)", ErrInvalidConfig, s.Protocols))
	}
	for _, list := range []struct {
		name string
		v    []PortRange
	}{{"dports", s.DPorts}, {"sports", s.SPorts}} {
		for i, r := range list.v {
			if r.Hi < r.Lo {
				return fieldErr(list.name, fmt.Errorf("%w: %s[%d]: %d-%d ends before it starts", ErrInvalidConfig, list.name, i, r.Lo, r.Hi))
			}
		}
	}
	for _, list := range []struct {
		name string
		v    []string
	}{{"in_ifaces", s.InIfs}, {"out_ifaces", s.OutIfs}} {
		for i, n := range list.v {
			if !proto.ValidIfName(n) || strings.Contains(n, "*") {
				return fieldErr(list.name, fmt.Errorf("%w: %s[%d]: bad interface name %q (1-15 characters, no wildcards)", ErrInvalidConfig, list.name, i, n))
			}
		}
	}
	for _, list := range []struct {
		name string
		v    []netip.Prefix
	}{{"sources", s.Sources}, {"destinations", s.Destinations}} {
		for i, p := range list.v {
			if !p.IsValid() {
				return fmt.Errorf("%w: %s[%d]: invalid prefix", ErrInvalidConfig, list.name, i)
			}
		}
	}
	return nil
}

// protoNumber resolves a protocol name or number.
func protoNumber(p string) (uint8, error) {
	if n, ok := proto.Number(strings.ToLower(p)); ok {
		return n, nil
	}
	n, err := strconv.ParseUint(p, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q", p)
	}
	return uint8(n), nil
}

// protocols returns the protocol numbers to steer: with ports configured,
// only those that carry ports (all of them when Protocols is empty).
func (c *Config) protocols() []uint8 {
	if len(c.Steer.DPorts)+len(c.Steer.SPorts) > 0 {
		if len(c.Steer.Protocols) == 0 {
			return []uint8{proto.TCP, proto.UDP, proto.SCTP, proto.UDPLite}
		}
		return c.portProtocols()
	}
	var out []uint8
	for _, p := range c.Steer.Protocols {
		n, _ := protoNumber(p)
		out = appendUnique(out, n)
	}
	return out
}

func (c *Config) portProtocols() []uint8 {
	var out []uint8
	for _, p := range c.Steer.Protocols {
		if n, _ := protoNumber(p); portProtos[n] {
			out = appendUnique(out, n)
		}
	}
	return out
}

func appendUnique(s []uint8, v uint8) []uint8 {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
