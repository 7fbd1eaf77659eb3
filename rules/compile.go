package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The policy compiler: Config.Policy as nftables rules (Mode KernelFirst).
//
// The hook's chain sends steered packets of new connections (ct state new)
// to the policy chain; every other steered packet is queued as in
// QueueAll. A packet that is not new belongs to a flow whose first packet
// was decided already: by the kernel, which put AcceptFlow in the
// connection's mark when it accepted (so later packets and replies are
// accepted by the mark, as user space's flow table would), or by user
// space, which has the flow in its table. Packets without conntrack state
// (invalid, untracked) are queued: only user space knows how to judge them.
//
// The policy chain holds the rules in order, then the default. A rule user
// space must decide (PolicyRule.Queue) queues the packets its kernel part
// matches; user space evaluates them from rule 0 with first-match
// semantics, and gets the same answer because no earlier kernel rule
// matched them. A rule whose kernel part can never match (ports on a
// protocol without ports, prefixes of neither family) adds nothing.

// policyChainSuffix names the policy chain of a hook's chain.
const policyChainSuffix = "_policy"

// policyChainName is the policy chain of hook in the builder's generation:
// "<hook>_policy_g<n>", deleted with the generation.
func (b *builder) policyChainName(hook string) string {
	return genName(hook+policyChainSuffix, b.gen)
}

// dccp is IPPROTO_DCCP; user space matches ports on it as well.
const dccp = 33

// policyPortProtos are the protocols whose ports user space matches.
var policyPortProtos = []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP, dccp, unix.IPPROTO_SCTP, unix.IPPROTO_UDPLITE}

// policyNote is the comment of a policy rule's nftables rules; Counters
// are summed by it (KernelHits).
func policyNote(name string) string { return "rule " + name }

const defaultNote = "default"

func queueNote(note, why string) string { return note + " -> queue: " + why }

// kernelFirstRules adds, in place of the steering queue rule, the rules
// that send steered packets of new connections to the policy chain named
// policyChain and queue the other steered packets.
func (b *builder) kernelFirstRules(ch *nftables.Chain, hook, policyChain string, steerAway bool) error {
	// The connection-mark accept (AcceptFlow) is at the chain's top
	// (chainRules), ahead of the verdict-mark rules.
	b.kernelAnswerRule(ch, hook)
	if err := b.rateFlowRules(ch); err != nil {
		return err
	}
	jump := []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(expr.CtStateBitNEW), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: policyChain},
	}
	if err := b.steered(ch, "new connection to policy", jump); err != nil {
		return err
	}
	return b.steered(ch, "steer to queue", append([]expr.Any{&expr.Counter{}}, b.queueVerdict(steerAway)))
}

// queueVerdict is the queue expression, or accept while steered away.
func (b *builder) queueVerdict(steerAway bool) expr.Any {
	if steerAway && b.cfg.Bypass {
		return verdict(expr.VerdictAccept)
	}
	c := b.cfg
	return queueExpr(b.impl, c.QueueNum, c.QueueCount, c.Bypass, c.Fanout)
}

// steered adds final behind the matchers of Config.Steer and the condition
// that qguard's mark bits are clear: one rule, or one per address family
// when the steering has prefixes.
func (b *builder) steered(ch *nftables.Chain, note string, final []expr.Any) error {
	common, err := b.steerMatch()
	if err != nil {
		return err
	}
	// Never queue a packet that carries a qguard mark: user space re-injected
	// it with NF_REPEAT and an unknown value would otherwise loop forever.
	common = append(common, maskedEq(metaMark(), b.cfg.Marks.Mask, 0)...)
	s := &b.cfg.Steer
	if len(s.Sources)+len(s.Destinations) == 0 {
		b.rule(ch, note, common, final)
		return nil
	}
	n := 0
	for _, v6 := range []bool{false, true} {
		m, ok, err := b.addrMatch(v6)
		if err != nil {
			return err
		}
		if ok {
			b.rule(ch, note, m, common, final)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: sources and destinations share no address family", ErrInvalidConfig)
	}
	return nil
}

// policyRules adds the compiled policy to ch, the policy chain of hook.
func (b *builder) policyRules(ch *nftables.Chain, hook string, steerAway bool) error {
	p := b.cfg.Policy
	for i := range p.Rules {
		b.ruleIdx = i // the name sets are the rule's
		if err := b.policyRule(ch, hook, i, &p.Rules[i], steerAway); err != nil {
			return fmt.Errorf("compile policy rule %q: %w", p.Rules[i].Name, err)
		}
	}
	if p.DefaultQueue != "" {
		b.rule(ch, queueNote(defaultNote, p.DefaultQueue), one(&expr.Counter{}, b.queueVerdict(steerAway)))
		return nil
	}
	return b.actionRules(ch, hook, defaultNote, func() ([]expr.Any, bool, error) { return nil, true, nil }, nil, p.Default, steerAway)
}

// policyRule adds the nftables rules of one policy rule.
func (b *builder) policyRule(ch *nftables.Chain, hook string, i int, r *PolicyRule, steerAway bool) error {
	fams := []uint8{0}
	if r.HasSrc || r.HasDst || r.hasNames() || r.Queue == "" && r.BlockSource > 0 {
		fams = []uint8{4, 6}
	} else if r.Family != 0 {
		fams = []uint8{r.Family}
	}
	for _, fam := range fams {
		if r.Family != 0 && fam != r.Family {
			continue
		}
		// Each nftables rule gets its own anonymous sets (a set is bound to
		// one rule), so the matchers are built once per rule.
		match := func() ([]expr.Any, bool, error) { return b.policyMatch(r, fam) }
		if _, ok, err := b.policyMatchable(r, fam); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		why := r.Queue
		if why == "" {
			why = b.kernelOptions(r)
		}
		if why != "" {
			m, _, err := match()
			if err != nil {
				return err
			}
			b.rule(ch, queueNote(policyNote(r.Name), why), m, one(&expr.Counter{}, b.queueVerdict(steerAway)))
			continue
		}
		if r.RateLimit != nil {
			m, _, err := match()
			if err != nil {
				return err
			}
			b.ratePolicyRule(ch, i, r, m)
			continue
		}
		if r.Log {
			m, _, err := match()
			if err != nil {
				return err
			}
			b.logRule(ch, r, m)
		}
		tail := blockTail(fam, r.BlockSource)
		if err := b.actionRules(ch, hook, policyNote(r.Name), match, tail, r.Action, steerAway); err != nil {
			return err
		}
	}
	return nil
}

// policyMatchable reports whether r can match a packet of family fam,
// without adding anything.
func (b *builder) policyMatchable(r *PolicyRule, fam uint8) (bool, bool, error) {
	if fam != 0 {
		v6 := fam == 6
		if r.HasSrc && prefixElems(r.Src, v6) == nil || r.HasDst && prefixElems(r.Dst, v6) == nil {
			return false, false, nil
		}
	}
	if len(r.SPorts)+len(r.DPorts) > 0 && len(portProtosOf(r.Protos)) == 0 {
		return false, false, nil
	}
	return true, true, nil
}

// actionRules adds match followed by action: an accept also marks the
// connection AcceptFlow, so its later packets and replies are accepted by
// the mark; a reject is a TCP reset for TCP and an ICMP(v6) port
// unreachable otherwise, like the verdict-mark rules (a drop where the
// kernel has no reject).
func (b *builder) actionRules(ch *nftables.Chain, hook, note string, match func() ([]expr.Any, bool, error), tail []expr.Any, a Action, steerAway bool) error {
	m := b.cfg.Marks
	n := 1
	if a == ActionReject && rejectHooks[hook] {
		n = 2
	}
	ms := make([][]expr.Any, n)
	for i := range ms {
		var err error
		if ms[i], _, err = match(); err != nil {
			return err
		}
	}
	switch {
	case a == ActionAccept:
		b.rule(ch, note, ms[0], ctMarkMerge(m.Mask, m.AcceptFlow), tail, one(&expr.Counter{}, verdict(expr.VerdictAccept)))
	case n == 2:
		b.rule(ch, note, ms[0], one(
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}}),
			tail, one(&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}))
		if hook == "output" {
			// A local sender whose datagram is rejected here gets EPERM from
			// sendmsg, not the ICMP error a queued packet would earn it
			// (user space's reject happens after sendmsg returned).
			b.rule(ch, queueNote(note, "reject of a local datagram"), ms[1], one(&expr.Counter{}, b.queueVerdict(steerAway)))
			break
		}
		b.rule(ch, note, ms[1], tail, one(&expr.Counter{},
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}))
	default:
		b.rule(ch, note, ms[0], tail, one(&expr.Counter{}, verdict(expr.VerdictDrop)))
	}
	return nil
}

// policyMatch returns the matchers of r for family fam (0: both), ok false
// when r cannot match a packet of that family.
func (b *builder) policyMatch(r *PolicyRule, fam uint8) (_ []expr.Any, ok bool, _ error) {
	var out []expr.Any
	if fam != 0 {
		v6 := fam == 6
		nf := byte(unix.NFPROTO_IPV4)
		typ := nftables.TypeIPAddr
		if v6 {
			nf, typ = unix.NFPROTO_IPV6, nftables.TypeIP6Addr
		}
		out = append(out, nfproto(nf)...)
		for _, l := range []struct {
			src bool
			has bool
			ps  []netip.Prefix
		}{{true, r.HasSrc, r.Src}, {false, r.HasDst, r.Dst}} {
			if !l.has {
				continue
			}
			m, ok, err := b.prefixLookup(v6, l.src, typ, l.ps)
			if !ok || err != nil {
				return nil, false, err
			}
			out = append(out, m...)
		}
		m, err := b.nameMatch(r, fam)
		if err != nil {
			return nil, false, err
		}
		out = append(out, m...)
	}
	for _, ifs := range []struct {
		key   expr.MetaKey
		names []string
	}{{expr.MetaKeyIIFNAME, r.InIfs}, {expr.MetaKeyOIFNAME, r.OutIfs}} {
		if len(ifs.names) == 0 {
			continue
		}
		m, err := b.policyIfMatch(ifs.key, ifs.names)
		if err != nil {
			return nil, false, err
		}
		out = append(out, m...)
	}
	protos := r.Protos
	if len(r.SPorts)+len(r.DPorts) > 0 {
		protos = portProtosOf(r.Protos)
		if len(protos) == 0 {
			return nil, false, nil
		}
	}
	if len(protos) > 0 {
		keys := make([][]byte, 0, len(protos))
		for _, p := range protos {
			keys = append(keys, []byte{p})
		}
		m, err := b.match(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, nftables.TypeInetProto, keys)
		if err != nil {
			return nil, false, err
		}
		out = append(out, m...)
	}
	for _, p := range []struct {
		src bool
		rs  []PortRange
	}{{true, r.SPorts}, {false, r.DPorts}} {
		if len(p.rs) == 0 {
			continue
		}
		m, err := b.portMatch(p.src, p.rs)
		if err != nil {
			return nil, false, err
		}
		out = append(out, m...)
	}
	for _, ids := range []struct {
		key expr.MetaKey
		typ nftables.SetDatatype
		rs  []IDRange
	}{{expr.MetaKeySKUID, nftables.TypeUID, r.UIDs}, {expr.MetaKeySKGID, nftables.TypeGID, r.GIDs}} {
		if len(ids.rs) == 0 {
			continue
		}
		m, err := b.idMatch(ids.key, ids.typ, ids.rs)
		if err != nil {
			return nil, false, err
		}
		out = append(out, m...)
	}
	return out, true, nil
}

// portProtosOf returns the protocols of ps that have ports, all of them
// when ps is empty.
func portProtosOf(ps []uint8) []uint8 {
	if len(ps) == 0 {
		return policyPortProtos
	}
	var out []uint8
	for _, p := range ps {
		if slices.Contains(policyPortProtos, p) {
			out = appendUnique(out, p)
		}
	}
	return out
}

// policyIfMatch is `iifname/oifname "x"` for one name, an anonymous set
// of names for several.
func (b *builder) policyIfMatch(key expr.MetaKey, names []string) ([]expr.Any, error) {
	load := &expr.Meta{Key: key, Register: 1}
	if len(names) == 1 {
		return one(load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(names[0])}), nil
	}
	s := anonSet(b.t, nftables.TypeIFName, false)
	el := make([]nftables.SetElement, 0, len(names))
	for _, n := range names {
		el = append(el, nftables.SetElement{Key: ifname(n)})
	}
	if err := b.c.AddSet(s, el); err != nil {
		return nil, fmt.Errorf("add interface set: %w", err)
	}
	return one(load, lookup(s)), nil
}

// idMatch matches meta skuid/skgid against ID ranges. The register holds
// the ID in host byte order; it is turned to network order first, so that
// ranges and interval sets compare it as a number.
func (b *builder) idMatch(key expr.MetaKey, typ nftables.SetDatatype, rs []IDRange) ([]expr.Any, error) {
	out := one(&expr.Meta{Key: key, Register: 1})
	if len(rs) == 1 && rs[0].First == rs[0].Last {
		return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(rs[0].First)}), nil
	}
	out = append(out, &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
	if len(rs) == 1 {
		return append(out, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be32(rs[0].First), ToData: be32(rs[0].Last)}), nil
	}
	s := anonSet(b.t, typ, true)
	if err := b.c.AddSet(s, idElems(rs)); err != nil {
		return nil, fmt.Errorf("add id set: %w", err)
	}
	return append(out, lookup(s)), nil
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// idElems returns interval elements for 32-bit ranges, in portElems'
// layout.
func idElems(rs []IDRange) []nftables.SetElement {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b IDRange) int {
		switch {
		case a.First < b.First:
			return -1
		case a.First > b.First:
			return 1
		}
		return 0
	})
	var merged []IDRange
	for _, r := range rs {
		if n := len(merged); n > 0 && uint64(r.First) <= uint64(merged[n-1].Last)+1 {
			merged[n-1].Last = max(merged[n-1].Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	var el []nftables.SetElement
	if merged[0].First > 0 {
		el = append(el, nftables.SetElement{Key: be32(0), IntervalEnd: true})
	}
	for _, r := range merged {
		el = append(el, nftables.SetElement{Key: be32(r.First)})
		if r.Last < 0xffffffff {
			el = append(el, nftables.SetElement{Key: be32(r.Last + 1), IntervalEnd: true})
		}
	}
	return el
}
