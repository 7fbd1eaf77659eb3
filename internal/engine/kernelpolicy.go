package engine

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
)

// kernelPolicy is the part of p the kernel can run (rules.Config.Policy,
// mode kernel-first): each rule's kernel matchers and action, and for a
// rule that user space must decide, why. Named sets are flattened into the
// rule's prefixes.
//
// dst_name and src_name are the kernel's: it looks the address up in the
// rule's name sets, which the engine keeps filled from the names table.
// User space decides a rule with an L7 matcher (the kernel queues what its
// addresses and ports match, with the ports a dns matcher implies), a mark
// or conntrack state matcher (evaluated per packet in user space, so the
// kernel must not hand the flow to its conntrack mark), interface indexes
// and name patterns ("eth*": the kernel rules compare whole names),
// and the rule options mark and flow; and the alert action, whose log line
// and counters are user space's. The kernel runs the options log (nflog
// lines the daemon writes as its own, kernelopts.go), rate_limit where nft's
// limit can be user space's bucket (kernelRate), and block_source (the
// nftables block sets), the latter only without XDP: with XDP, blocked
// sources belong in its map, which only user space fills.
func kernelPolicy(p *verdict.Policy, o *kernelOpts) *rules.Policy {
	out := &rules.Policy{Default: kernelAction(p.Default), Rules: make([]rules.PolicyRule, len(p.Rules)),
		LogRate: o.logRate}
	for i := range p.Rules {
		out.Rules[i] = kernelRule(&p.Rules[i], p.Sets, o)
	}
	return out
}

// kernelOpts is what the kernel's share of the rule options depends on
// outside the policy.
type kernelOpts struct {
	// logRate is the decision log rate in lines a second, rounded up; 0:
	// decision logging is off.
	logRate uint32
	// xdp: sources are blocked in XDP, so block_source stays in user space.
	xdp bool
}

func kernelAction(a verdict.Action) rules.Action {
	switch a {
	case verdict.ActionAccept:
		return rules.ActionAccept
	case verdict.ActionReject:
		return rules.ActionReject
	}
	return rules.ActionDrop
}

// dnsPort is the destination port a dns matcher implies when the rule
// names none (verdict's compile does the same).
var dnsPort = []rules.PortRange{{Lo: 53, Hi: 53}}

func kernelRule(r *verdict.Rule, sets map[string][]netip.Prefix, o *kernelOpts) rules.PolicyRule {
	m := &r.Match
	k := rules.PolicyRule{
		Name: r.Name, Family: m.Family, Protos: slices.Clone(m.Protos),
		SPorts: slices.Clone(m.SrcPorts), DPorts: slices.Clone(m.DstPorts),
		InIfs: slices.Clone(m.InIfaces), OutIfs: slices.Clone(m.OutIfaces),
		HasSrc: len(m.Src)+len(m.SrcSets) > 0, HasDst: len(m.Dst)+len(m.DstSets) > 0,
		Action: kernelAction(r.Action),
	}
	k.Src = flatten(m.Src, m.SrcSets, sets)
	k.Dst = flatten(m.Dst, m.DstSets, sets)
	for _, ids := range []struct {
		in  []verdict.IDRange
		out *[]rules.IDRange
	}{{m.UIDs, &k.UIDs}, {m.GIDs, &k.GIDs}} {
		for _, id := range ids.in {
			*ids.out = append(*ids.out, rules.IDRange{First: id.Lo, Last: id.Hi})
		}
	}
	// dst_name/src_name: the rule's name sets (a bad pattern fails the
	// compile before the kernel sees it).
	if len(m.DstName) > 0 {
		k.DstNames, _ = verdict.NameMatcher(m.DstName)
	}
	if len(m.SrcName) > 0 {
		k.SrcNames, _ = verdict.NameMatcher(m.SrcName)
	}
	if len(m.DNS) > 0 && len(k.DPorts) == 0 {
		k.DPorts = dnsPort
	}
	k.Queue = queueReason(r, k.Src, k.Dst, o)
	if k.Queue == "" {
		k.Log = r.Log && o.logRate > 0
		k.BlockSource = r.BlockSource
		k.RateLimit, _ = kernelRate(r.RateLimit)
	}
	return k
}

// queueReason says why user space must decide r, "" when the kernel can.
func queueReason(r *verdict.Rule, src, dst []netip.Prefix, o *kernelOpts) string {
	m := &r.Match
	switch {
	case r.Action == verdict.ActionAlert:
		return "alert action (accepted and logged by user space)"
	case len(m.DNS) > 0:
		return "dns matcher"
	case len(m.SNI) > 0:
		return "sni matcher"
	case len(m.HTTPHost) > 0:
		return "http_host matcher"
	case len(m.Payload) > 0:
		return "payload matcher"
	case m.Mark != nil:
		return "mark matcher (per packet)"
	case m.CT != 0:
		return "ct matcher (per packet)"
	case len(m.InIfIndexes)+len(m.OutIfIndexes) > 0:
		return "interface indexes"
	case hasIfPattern(m.InIfaces) || hasIfPattern(m.OutIfaces):
		// The kernel rules compare whole names; "eth*" would be a literal.
		return "interface name pattern"
	case r.RateLimit != nil && rateReason(r) != "":
		return rateReason(r)
	case r.BlockSource > 0 && o.xdp:
		return "block_source with xdp (the source goes to the XDP map)"
	case r.Flow:
		return "flow option"
	case r.SetMark:
		return "mark option"
	}
	for _, p := range append(slices.Clone(src), dst...) {
		if p.Addr().Is4In6() {
			return "IPv4-mapped IPv6 prefix"
		}
	}
	return ""
}

func hasIfPattern(names []string) bool {
	for _, n := range names {
		if strings.HasSuffix(n, "*") {
			return true
		}
	}
	return false
}

func flatten(own []netip.Prefix, names []string, sets map[string][]netip.Prefix) []netip.Prefix {
	out := slices.Clone(own)
	for _, n := range names {
		out = append(out, sets[n]...)
	}
	return out
}
