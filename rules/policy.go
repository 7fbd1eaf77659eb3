package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/qguard/qguard/internal/enumtext"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/proto"
)

// Mode says how much of the policy the kernel decides.
type Mode uint8

const (
	// QueueAll sends everything the steering selects to the queue; user
	// space decides every packet (the table has no policy of its own).
	QueueAll Mode = iota
	// KernelFirst compiles Config.Policy into the table: the kernel decides
	// what addresses, ports, interfaces and socket owners decide, and queues
	// only what a rule needing user space could match.
	KernelFirst
)

// modeNames are the modes' text forms (the configuration file's
// rules.mode).
var modeNames = [...]string{QueueAll: "queue-all", KernelFirst: "kernel-first"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText returns String's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses "kernel-first" or "queue-all".
func (m *Mode) UnmarshalText(b []byte) error {
	return enumtext.Set(m, b, "rules mode", ErrInvalidConfig, modeNames[:]...)
}

// ParseMode returns the mode named s ("kernel-first", "queue-all").
func ParseMode(s string) (Mode, error) {
	var m Mode
	err := m.UnmarshalText([]byte(s))
	return m, err
}

// Action is what a policy rule does with the packets it matches.
type Action uint8

// Actions. The zero Action is invalid.
const (
	ActionAccept Action = iota + 1
	ActionDrop
	ActionReject
)

func (a Action) String() string {
	switch a {
	case ActionAccept:
		return "accept"
	case ActionDrop:
		return "drop"
	case ActionReject:
		return "reject"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// IDRange is an inclusive range of user or group IDs.
type IDRange struct{ First, Last uint32 }

// Policy is the first-match policy of user space, as far as the kernel can
// take part in it: the rules in order and the default action.
type Policy struct {
	Rules   []PolicyRule
	Default Action
	// DefaultQueue, when not empty, says why the default must be decided in
	// user space; packets no rule matched are then queued.
	DefaultQueue string
	// LogRate bounds the kernel's log lines per rule and second (rule
	// option log); 0 means DefaultLogRate.
	LogRate uint32
	// LogGroup is the nflog group the kernel's log lines go to; 0 means
	// DefaultLogGroup.
	LogGroup uint16
}

// DefaultLogGroup is Policy.LogGroup when it is zero (a group no common
// logger listens on by default; ulogd's examples use 0-2).
const DefaultLogGroup = 7167

// Group returns the nflog group of the kernel's log lines.
func (p *Policy) Group() uint16 {
	if p.LogGroup == 0 {
		return DefaultLogGroup
	}
	return p.LogGroup
}

// DefaultLogRate is Policy.LogRate when it is zero: user space's default
// rate for decision log lines.
const DefaultLogRate = 10

// PolicyRule is one policy rule's matchers the kernel has, its action and,
// when user space must decide it, why. Empty matchers match everything;
// within a matcher any value may match.
type PolicyRule struct {
	Name   string
	Family uint8   // 4 or 6; 0 both
	Protos []uint8 // IP protocol numbers
	// Src and Dst are the rule's prefixes with those of its named sets;
	// HasSrc and HasDst say that the rule has the matcher at all (an empty
	// set matches nothing).
	Src, Dst       []netip.Prefix
	HasSrc, HasDst bool
	// SPorts and DPorts match TCP, UDP, UDP-Lite, SCTP and DCCP only, as in
	// user space.
	SPorts, DPorts []PortRange
	InIfs, OutIfs  []string
	// UIDs and GIDs match the owner of a local socket (meta skuid/skgid,
	// the same socket fields nfnetlink_queue reports).
	UIDs, GIDs []IDRange
	// DstNames and SrcNames, when set, match the destination (source)
	// addresses DNS answers bound to names they match: the kernel looks
	// them up in the rule's name sets (names.go), filled from
	// Config.Names and by Manager.AddBinding.
	DstNames, SrcNames names.Matcher
	Action             Action
	// Log asks for a log line naming the rule when it decides a
	// connection: the kernel sends it to nflog group Config.LogGroup (the
	// daemon writes it as its own "decision" line), at most
	// Policy.LogRate lines a second per rule.
	Log bool
	// BlockSource, when positive, puts the source of a connection the rule
	// decides into the block set for this long: the kernel drops its later
	// packets, as after user space's block_source.
	BlockSource time.Duration
	// RateLimit, when not nil, is a token bucket every packet of a
	// connection the rule decides takes from (rate_limit.go).
	RateLimit *RateLimit
	// Queue, when not empty, says why user space decides the rule (an L7
	// matcher, a rate limit, ...): the kernel queues the packets that the
	// rest of the rule matches, and user space decides them from the first
	// rule on.
	Queue string
}

// Place says where one policy rule runs.
type Place struct {
	Rule   string
	Kernel bool
	Why    string // for queued rules
}

// Plan says for each rule, then the default, where it runs in mode m.
func (p *Policy) Plan(m Mode) []Place {
	out := make([]Place, 0, len(p.Rules)+1)
	for i := range p.Rules {
		r := &p.Rules[i]
		pl := Place{Rule: r.Name, Kernel: m == KernelFirst && r.Queue == ""}
		switch {
		case m != KernelFirst:
			pl.Why = "mode queue-all"
		case r.Queue != "":
			pl.Why = r.Queue
		}
		out = append(out, pl)
	}
	d := Place{Rule: "(default)", Kernel: m == KernelFirst && p.DefaultQueue == ""}
	switch {
	case m != KernelFirst:
		d.Why = "mode queue-all"
	case p.DefaultQueue != "":
		d.Why = p.DefaultQueue
	}
	return append(out, d)
}

// FormatPlan renders a plan, one line a rule: "kernel  name",
// "queue   name (why)" or "both    name (...)".
func FormatPlan(pl []Place) string {
	var b strings.Builder
	for _, p := range pl {
		if p.Kernel {
			fmt.Fprintf(&b, "kernel  %s\n", p.Rule)
		} else if both, ok := strings.CutPrefix(p.Why, "kernel, and queue for "); ok {
			fmt.Fprintf(&b, "both    %s (kernel; queue for %s)\n", p.Rule, both)
		} else {
			fmt.Fprintf(&b, "queue   %s (%s)\n", p.Rule, p.Why)
		}
	}
	return b.String()
}

// check validates a policy for KernelFirst.
func (p *Policy) check() error {
	if p.Default < ActionAccept || p.Default > ActionReject {
		return fmt.Errorf("%w: policy default %v", ErrInvalidConfig, p.Default)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		at := func(f string, a ...any) error {
			return fmt.Errorf("%w: policy rule %q (#%d): %s", ErrInvalidConfig, r.Name, i, fmt.Sprintf(f, a...))
		}
		if r.Action < ActionAccept || r.Action > ActionReject {
			return at("action %v", r.Action)
		}
		if r.Family != 0 && r.Family != 4 && r.Family != 6 {
			return at("family %d (want 4 or 6)", r.Family)
		}
		for _, pr := range append(append([]PortRange(nil), r.SPorts...), r.DPorts...) {
			if pr.Hi < pr.Lo {
				return at("port range %d-%d ends before it starts", pr.Lo, pr.Hi)
			}
		}
		for _, pf := range append(append([]netip.Prefix(nil), r.Src...), r.Dst...) {
			if !pf.IsValid() {
				return at("invalid prefix")
			}
		}
		for _, ids := range [][]IDRange{r.UIDs, r.GIDs} {
			for _, id := range ids {
				if id.Last < id.First {
					return at("id range %d-%d ends before it starts", id.First, id.Last)
				}
			}
		}
		if r.BlockSource < 0 || r.BlockSource > 0 && r.BlockSource < time.Millisecond {
			return at("block_source %v (want 1ms or more)", r.BlockSource)
		}
		if err := r.RateLimit.check(r.Action); err != nil {
			return at("%v", err)
		}
		for _, n := range append(append([]string(nil), r.InIfs...), r.OutIfs...) {
			if !proto.ValidIfName(n) {
				return at("bad interface name %q", n)
			}
		}
	}
	return nil
}
