package verdict

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gaissmai/bart"

	"github.com/qguard/qguard/proto"

	"github.com/qguard/qguard/verdict/l7"
	"github.com/qguard/qguard/verdict/packet"
)

// Trace explains the decision for one packet: every rule looked at, matcher
// by matcher, until one matched. It is built by Pipeline.Trace for logs and
// rule tests and allocates freely.
type Trace struct {
	Packet   string // one-line summary of the decoded packet
	Decision Decision
	Rule     string // name of the deciding rule, or default, invalid, pending
	Steps    []TraceStep
}

// TraceStep is one rule's evaluation.
type TraceStep struct {
	Rule   int
	Name   string
	Result string // "match", "no match" or "waiting for L7 data"
	Checks []TraceCheck
}

// TraceCheck is one matcher of a rule.
type TraceCheck struct {
	Matcher string // "src", "dport", "sni", ...
	Result  string // "match", "no match", "waiting"
	Detail  string // what the packet had and what the rule wanted
}

// String renders t on several lines.
func (t Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "packet: %s\n", t.Packet)
	for _, s := range t.Steps {
		fmt.Fprintf(&b, "rule %q (#%d): %s\n", s.Name, s.Rule, s.Result)
		for _, c := range s.Checks {
			fmt.Fprintf(&b, "  %-9s %-8s %s\n", c.Matcher, c.Result, c.Detail)
		}
	}
	fmt.Fprintf(&b, "decision: %s by %s", t.Decision.Action, t.Rule)
	if t.Decision.Alert != ActionUnset {
		fmt.Fprintf(&b, " (alert: would %s)", t.Decision.Alert)
	}
	if t.Decision.SetMark {
		fmt.Fprintf(&b, ", mark %#x", t.Decision.Mark)
	}
	if t.Decision.Offload {
		b.WriteString(", whole flow")
	}
	if t.Decision.BlockSource > 0 {
		fmt.Fprintf(&b, ", block source for %v", t.Decision.BlockSource)
	}
	return b.String()
}

// Trace evaluates raw as the first packet of a new flow, rule by rule in
// order without the index, and says why each rule matched or not. It uses
// neither the flow table nor the stages, and takes no rate-limit tokens: a
// rate-limited rule is reported with its own action. L7 matchers see only
// this packet; when it lacks the L7 data a rule needs the decision is
// RulePending (unless Policy.L7Packets is 1: then it is RuleUndecided), and
// RuleUndecided when the data cannot be read.
func (p *Pipeline) Trace(raw []byte, m *Meta) Trace {
	c := p.Compiled()
	var pk packet.Packet
	var t Trace
	if m == nil {
		m = &Meta{}
	}
	if !packet.Decode(raw, &pk) {
		t.Packet = fmt.Sprintf("invalid: %s", pk.Invalid)
		t.Decision = Decision{Action: c.invalid, Rule: RuleInvalid, Reason: pk.Invalid}
		t.Rule = RuleNameInvalid
		return t
	}
	t.Packet = summary(&pk)
	x := new(inspect)
	x.reset(c, &pk, m, nil, p.flows, c.l7Packets <= 1) // a policy that never waits never waits here either
	// Each DNS question of the packet is walked in turn, as Decide does;
	// the first that is not accepted decides.
	for {
		t.Decision = traceWalk(c, x, &t)
		if t.Decision.Action != ActionAccept || !x.advance() {
			break
		}
	}
	t.Rule = c.RuleName(t.Decision.Rule)
	return t
}

// traceWalk walks the rules for the packet's current message.
func traceWalk(c *Compiled, x *inspect, t *Trace) Decision {
	for i := range c.rules {
		r := &c.rules[i]
		step := TraceStep{Rule: i, Name: r.name}
		res := traceRule(r, x, &step)
		step.Result = map[tri]string{triYes: "match", triNo: "no match", triWait: "waiting for L7 data"}[res]
		if res == triWait && x.undecided {
			step.Result = "undecided: policy.l7_undecided"
		}
		t.Steps = append(t.Steps, step)
		if res == triWait && x.undecided {
			return Decision{Action: c.undecided, Rule: RuleUndecided}
		}
		if res == triWait {
			return Decision{Action: ActionAccept, Rule: RulePending}
		}
		if res == triYes {
			d := Decision{Rule: i, Action: r.action, Offload: r.flow, BlockSource: r.blockSource, Log: r.log, Alert: r.alert}
			if r.setMark {
				d.Mark, d.SetMark = r.mark2, true
			}
			return d
		}
	}
	return Decision{Action: c.def, Rule: RuleDefault}
}

func summary(p *packet.Packet) string {
	name := proto.String(p.Proto)
	if p.HasPorts() {
		return fmt.Sprintf("%s %s -> %s, %d payload bytes", name,
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), len(p.Payload))
	}
	return fmt.Sprintf("%s %s -> %s, %d payload bytes", name, p.Src, p.Dst, len(p.Payload))
}

// traceRule checks every matcher of r, recording each, and returns the
// rule's result: no as soon as a matcher fails.
func traceRule(r *crule, x *inspect, s *TraceStep) tri {
	p, m, ifaces := x.p, x.m, x.c.ifaces
	check := func(name string, ok bool, format string, args ...any) bool {
		res := "match"
		if !ok {
			res = "no match"
		}
		s.Checks = append(s.Checks, TraceCheck{Matcher: name, Result: res, Detail: fmt.Sprintf(format, args...)})
		return ok
	}
	if r.family != 0 && !check("family", p.Family == r.family, "packet IPv%d, rule IPv%d", p.Family, r.family) {
		return triNo
	}
	if !r.anyProto && !check("proto", r.protos[p.Proto>>6]&(1<<(p.Proto&63)) != 0, "packet %s", proto.String(p.Proto)) {
		return triNo
	}
	if r.hasSrc && !check("src", inTables(r.src, p.Src), "%s in %s", p.Src, r.srcDesc) {
		return triNo
	}
	if r.hasDst && !check("dst", inTables(r.dst, p.Dst), "%s in %s", p.Dst, r.dstDesc) {
		return triNo
	}
	if len(r.sports) > 0 && !check("sport", p.HasPorts() && inPorts(r.sports, p.SrcPort), "%s in %v", portDesc(p, p.SrcPort), r.sports) {
		return triNo
	}
	if len(r.dports) > 0 {
		implied := ""
		if r.dnsPort {
			implied = " (implied by dns)"
		}
		if !check("dport", p.HasPorts() && inPorts(r.dports, p.DstPort), "%s in %v%s", portDesc(p, p.DstPort), r.dports, implied) {
			return triNo
		}
	}
	if r.hasIn && !check("in_iface", ifMatch(r.inIf, r.inName, m.InIf, ifaces), "%s in %s", ifDesc(m.InIf, ifaces), ifsDesc(r.inIf, r.inName)) {
		return triNo
	}
	if r.hasOut && !check("out_iface", ifMatch(r.outIf, r.outName, m.OutIf, ifaces), "%s in %s", ifDesc(m.OutIf, ifaces), ifsDesc(r.outIf, r.outName)) {
		return triNo
	}
	if r.hasMark && !check("mark", m.Mark&r.mark.Mask == r.mark.Value, "%#x & %#x == %#x", m.Mark, r.mark.Mask, r.mark.Value) {
		return triNo
	}
	if r.ct != 0 && !check("ct", r.ct&m.ctBit() != 0, "state %s in %s", m.ctBit(), r.ct) {
		return triNo
	}
	if len(r.uids) > 0 && !check("uid", m.HasUID && inIDs(r.uids, m.UID), "uid %s in %v", idDesc(m.HasUID, m.UID), r.uids) {
		return triNo
	}
	if len(r.gids) > 0 && !check("gid", m.HasGID && inIDs(r.gids, m.GID), "gid %s in %v", idDesc(m.HasGID, m.GID), r.gids) {
		return triNo
	}
	for _, f := range []struct {
		name string
		set  *nameSet
		a    netip.Addr
	}{{"dst_name", r.dstName, p.Dst}, {"src_name", r.srcName, p.Src}} {
		if f.set != nil && !check(f.name, x.c.bound.match(f.a, f.set), "%s bound to a name in %s", f.a, f.set) {
			return triNo
		}
	}
	return traceL7(r, x, s)
}

func traceL7(r *crule, x *inspect, s *TraceStep) tri {
	res := triYes
	add := func(name string, t tri, detail string) {
		out := map[tri]string{triYes: "match", triNo: "no match", triWait: "waiting"}[t]
		s.Checks = append(s.Checks, TraceCheck{Matcher: name, Result: out, Detail: detail})
		res = and(res, t)
	}
	for _, f := range []struct {
		bit  uint8
		name string
		set  *nameSet
	}{{needDNS, "dns", r.dns}, {needSNI, "sni", r.sni}, {needHost, "http_host", r.host}} {
		if r.l7&f.bit == 0 || res == triNo {
			continue
		}
		t := x.names(f.bit, f.set)
		name, st := x.extract(f.bit)
		detail := fmt.Sprintf("packet %s", st)
		if st == l7.Found {
			detail = fmt.Sprintf("packet name %q", name)
		}
		add(f.name, t, detail+" vs "+f.set.String())
	}
	if r.l7&needPayload != 0 && res != triNo {
		t := x.payload(r.payload)
		detail := fmt.Sprintf("%d payload bytes, no pattern found", len(x.p.Payload))
		switch {
		case t == triWait:
			detail = "no payload yet"
		case t == triYes:
			detail = fmt.Sprintf("pattern %q found", r.payload.pats[x.patIdx])
		}
		add("payload", t, detail)
	}
	return res
}

func (s *nameSet) String() string {
	var out []string
	if s.all {
		out = append(out, "*")
	}
	for n := range s.exact {
		out = append(out, n)
	}
	for n := range s.suffix {
		out = append(out, "*."+n)
	}
	if len(out) > 6 {
		return fmt.Sprintf("%d names", len(out))
	}
	return fmt.Sprint(out)
}

func inTables(ts []*bart.Lite, a netip.Addr) bool {
	for _, t := range ts {
		if t.Contains(a) {
			return true
		}
	}
	return false
}

func inPorts(rs []PortRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}

func portDesc(p *packet.Packet, port uint16) string {
	if !p.HasPorts() {
		return "no port"
	}
	return fmt.Sprint(port)
}

func idDesc(has bool, id uint32) string {
	if !has {
		return "unknown"
	}
	return fmt.Sprint(id)
}

// ifMatch says whether interface index i is in idx or has a name matching
// pats.
func ifMatch(idx []uint32, pats []ifPattern, i uint32, t *Ifaces) bool {
	return hasU32(idx, i) || matchIfPatterns(pats, t.Name(i))
}

func ifDesc(i uint32, t *Ifaces) string {
	if i == 0 {
		return "none"
	}
	if n := t.Name(i); n != "" {
		return fmt.Sprintf("%s (index %d)", n, i)
	}
	return fmt.Sprintf("index %d (no such interface)", i)
}

func ifsDesc(idx []uint32, pats []ifPattern) string {
	var l []string
	for _, p := range pats {
		l = append(l, p.String())
	}
	for _, i := range idx {
		l = append(l, fmt.Sprint(i))
	}
	return "[" + strings.Join(l, " ") + "]"
}
