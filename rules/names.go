package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/names"
)

// nameNote is the comment of the rules queueing DNS for the names; Queues
// counts them as steering (the engine's fail-open estimate).
var nameNote = queueNote("dns", "dst_name and src_name read the answers")

// nameDNSRules queues the TCP and UDP packets to and from Config.NamePorts
// (queries and answers), ahead of everything that could accept them in
// the kernel: user space must see both to bind an answer, and an answer
// belongs to a flow whose first packet is decided already.
func (b *builder) nameDNSRules(ch *nftables.Chain, steerAway bool) error {
	if len(b.cfg.NamePorts) == 0 {
		return nil
	}
	for _, src := range []bool{false, true} {
		ifs, err := b.steerIfMatch()
		if err != nil {
			return err
		}
		protos, err := b.match(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, nftables.TypeInetProto,
			[][]byte{{unix.IPPROTO_TCP}, {unix.IPPROTO_UDP}})
		if err != nil {
			return err
		}
		ports, err := b.portMatch(src, b.cfg.NamePorts)
		if err != nil {
			return err
		}
		// A packet re-injected with a qguard mark is never queued again.
		b.rule(ch, nameNote, ifs, protos, ports, maskedEq(metaMark(), b.cfg.Marks.Mask, 0),
			one(&expr.Counter{}, b.queueVerdict(steerAway)))
	}
	return nil
}

func checkNamePorts(ps []PortRange) error {
	for _, p := range ps {
		if p.Hi < p.Lo {
			return fmt.Errorf("%w: name port range %d-%d ends before it starts", ErrInvalidConfig, p.Lo, p.Hi)
		}
	}
	return nil
}

// The name sets (mode KernelFirst): a policy rule with dst_name or
// src_name looks the packet's address up in a named set of its own per
// family and generation, "name_<rule>_<dst|src><4|6>_g<n>", whose elements
// carry the remaining lifetime of the binding that put them there (the
// set has the timeout flag: the kernel drops an element when it expires).
// A new generation's sets are filled from Config.Names in the transaction
// that adds them; Manager.AddBinding adds later bindings to the sets of
// the generation in force, under the Manager's lock, so a binding is in
// the sets of every generation that is installed after it was made.

const nameSetStem = "name_"

func nameSetName(rule int, src, v6 bool, gen uint64) string {
	dir, fam := "dst", "4"
	if src {
		dir = "src"
	}
	if v6 {
		fam = "6"
	}
	return genName(fmt.Sprintf("%s%d_%s%s", nameSetStem, rule, dir, fam), gen)
}

// isNameSet reports whether name is a name set of some generation.
func isNameSet(name string) bool {
	stem, _, ok := parseGen(name)
	return ok && strings.HasPrefix(stem, nameSetStem)
}

// nameElems returns the set elements of bs, of one family, whose names m
// matches, with their remaining lifetimes at now; bindings with less than
// a millisecond left are skipped (the kernel's timeouts are milliseconds).
func nameElems(bs []names.Binding, m names.Matcher, v6 bool, now time.Time) []nftables.SetElement {
	var out []nftables.SetElement
	for _, b := range bs {
		left := b.Expires.Sub(now)
		if b.Addr.Is6() != v6 || left < time.Millisecond || m != nil && !m.MatchName([]byte(b.Name)) {
			continue
		}
		out = append(out, nftables.SetElement{Key: b.Addr.AsSlice(), Timeout: left})
	}
	return out
}

// nameLookup is `ip/ip6 saddr/daddr @name_...` for rule b.ruleIdx, adding the
// set (once per generation) with the bindings its names match.
func (b *builder) nameLookup(r *PolicyRule, src, v6 bool) ([]expr.Any, error) {
	name := nameSetName(b.ruleIdx, src, v6, b.gen)
	if !b.used[name] {
		b.used[name] = true
		typ := nftables.TypeIPAddr
		if v6 {
			typ = nftables.TypeIP6Addr
		}
		s := &nftables.Set{Table: b.t, Name: name, KeyType: typ, HasTimeout: true}
		m := r.DstNames
		if src {
			m = r.SrcNames
		}
		var el []nftables.SetElement
		if t := b.cfg.Names; t != nil {
			el = nameElems(t.Matching(m), nil, v6, t.Now())
		}
		if err := b.c.AddSet(s, el); err != nil {
			return nil, fmt.Errorf("add set %s: %w", name, err)
		}
	}
	return one(addrLoad(v6, src), &expr.Lookup{SourceRegister: 1, SetName: name}), nil
}

// nameMatch returns r's name set lookups for family fam (4 or 6).
func (b *builder) nameMatch(r *PolicyRule, fam uint8) ([]expr.Any, error) {
	var out []expr.Any
	for _, l := range r.nameLists() {
		e, err := b.nameLookup(r, l.src, fam == 6)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// hasNames reports whether r has dst_name or src_name.
func (r *PolicyRule) hasNames() bool { return r.DstNames != nil || r.SrcNames != nil }

// nameList is one of a rule's name matchers: dst_name, or src_name (src).
type nameList struct {
	src bool
	m   names.Matcher
}

// nameLists returns r's dst_name and src_name matchers that are set, in
// that order (the order of the rule's lookups).
func (r *PolicyRule) nameLists() []nameList {
	var out []nameList
	if r.DstNames != nil {
		out = append(out, nameList{false, r.DstNames})
	}
	if r.SrcNames != nil {
		out = append(out, nameList{true, r.SrcNames})
	}
	return out
}
