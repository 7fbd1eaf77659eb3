package rules

import (
	"fmt"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Rate limits in the kernel (mode KernelFirst, PolicyRule.RateLimit).
//
// User space applies a rule's rate limit to every packet of every flow the
// rule decided, both directions, the flow's first packet and the cached
// ones alike: a packet that finds a token gets the rule's action, one that
// finds none the exceed action. The kernel does the same in a chain of the
// rule's own, "rl_<i>_g<n>", that every packet of such a connection goes
// through:
//
//   - the policy chain, deciding a new connection by the rule, puts
//     rateFlow in the connection's mark and jumps to the rule's chain;
//   - the rule's chain records the connection (ct id) in its set
//     "rl_<i>_c_g<n>" (every packet refreshes the timeout), takes a token
//     and gives the action, or the exceed action;
//   - the hook's chain sends every later steered packet whose connection
//     carries rateFlow and is in rule i's set to rule i's chain, in either
//     direction (one rule and set lookup per rate rule).
//
// The bucket: `limit rate R/unit burst B packets` for key rule (one limit
// in one chain: shared by every hook and family); for key source, dynamic
// sets "rl_<i>_s4/_s6_g<n>" of `ip saddr limit ...` (the packet's source:
// a reply counts for its sender, as in user space); for key flow, a
// dynamic set "rl_<i>_f_g<n>" of `ct id limit ...`. nft's limit is user space's token bucket:
// Burst tokens at first, Rate per Unit added up to Burst, one a packet.
// Where the two differ:
//
//   - a full source or flow set (MaxKeys keys within the refill time) gives
//     new keys the exceed action until old ones time out; user space evicts
//     the least recently used key instead. A key idle until its bucket is
//     full again is forgotten in both, which changes nothing;
//   - a connection its set has forgotten (idle for rateFlowIdle), or of an
//     earlier generation (a reload starts every bucket afresh, as user
//     space's new policy does), is decided by user space with its own
//     buckets from then on;
//   - the kernel's token costs Unit/Rate nanoseconds rounded down (a
//     bucket refills up to a nanosecond a token faster);
//   - ct id is a 32-bit hash: two live rate-limited connections that share
//     one (odds about n/2^32 for n of them) share a flow bucket and, with
//     several rate rules, the earlier rule's chain.
//
// Rules with a reject action or exceed action, a log or block_source
// option stay in user space, and so does every rate limit when the probe
// finds no meters or no mark value is free under Marks.Mask.

const (
	rateStem = "rl_"
	// rateFlowIdle is how long a rule's set keeps an idle connection.
	rateFlowIdle = 10 * time.Minute
	// rateFlowMax bounds a rule's set of connections: connections past it
	// are decided by user space after their first packet.
	rateFlowMax = 1 << 20
)

// rateFlowType is the key of a connection: its ct id, a 32-bit hash of
// the conntrack entry. (ct original proto-src/dst would make a shared id
// harmless, but the library cannot read back their direction attribute.)
var rateFlowType = nftables.TypeInteger

func rateFlowLoad() []expr.Any {
	return one(&expr.Ct{Key: expr.CtKey(unix.NFT_CT_ID), Register: tupleReg})
}

// rateChain names rule i's chain in generation gen.
func rateChain(i int, gen uint64) string { return genName(rateStem+strconv.Itoa(i), gen) }

// rateFlowMark is the mark value of connections decided by a kernel rate
// limit: the first value under m.Mask that is none of m's others.
func rateFlowMark(m Marks) (uint32, bool) {
	for k := uint32(1); k < 64; k++ {
		v := deposit(k, m.Mask)
		if v == 0 {
			return 0, false
		}
		if v != m.AcceptFlow && v != m.DropFlow && v != m.Reject {
			return v, true
		}
	}
	return 0, false
}

// deposit spreads the low bits of k over the set bits of mask (pdep);
// 0 when k does not fit.
func deposit(k, mask uint32) uint32 {
	var v uint32
	for mask != 0 && k != 0 {
		low := mask & -mask
		if k&1 != 0 {
			v |= low
		}
		k >>= 1
		mask &^= low
	}
	if k != 0 {
		return 0
	}
	return v
}

// rateReason says why the kernel cannot run r's rate limit, "" when it
// can (or r has none).
func (b *builder) rateReason(r *PolicyRule) string {
	switch {
	case r.RateLimit == nil:
		return ""
	case !b.caps.Meter:
		return "rate_limit (no nft meters in this kernel: " + b.caps.MeterErr + ")"
	case r.Log || r.BlockSource > 0:
		return "rate_limit with log or block_source"
	}
	if _, ok := rateFlowMark(b.cfg.Marks); !ok {
		return fmt.Sprintf("rate_limit (no mark value free under marks.mask %#x)", b.cfg.Marks.Mask)
	}
	return ""
}

// kernelRate reports whether the kernel runs rule i's rate limit.
func (b *builder) kernelRate(r *PolicyRule) bool {
	return r.RateLimit != nil && r.Queue == "" && b.kernelOptions(r) == ""
}

// rateChains adds the generation's rate limit chains and sets, and
// returns the chains. Called before the chains that refer to them.
func (b *builder) rateChains() ([]*nftables.Chain, error) {
	p := b.cfg.Policy
	var out []*nftables.Chain
	for i := range p.Rules {
		r := &p.Rules[i]
		if !b.kernelRate(r) {
			continue
		}
		flows := &nftables.Set{Table: b.t, Name: rateFlows(i, b.gen), KeyType: rateFlowType,
			Dynamic: true, HasTimeout: true, Timeout: rateFlowIdle, Size: rateFlowMax}
		if err := b.addGenSet(flows, nil); err != nil {
			return nil, err
		}
		ch := b.c.AddChain(&nftables.Chain{Name: rateChain(i, b.gen), Table: b.t})
		out = append(out, ch)
		if err := b.rateRules(ch, i, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rateFlows names the set of rule i's connections in generation gen.
func rateFlows(i int, gen uint64) string { return genName(rateStem+strconv.Itoa(i)+"_c", gen) }

func (b *builder) addGenSet(s *nftables.Set, el []nftables.SetElement) error {
	b.used[s.Name] = true
	if err := b.c.AddSet(s, el); err != nil {
		return fmt.Errorf("add set %s: %w", s.Name, err)
	}
	return nil
}

// rateRules fills rule i's chain ch.
func (b *builder) rateRules(ch *nftables.Chain, i int, r *PolicyRule) error {
	l := r.RateLimit
	note := policyNote(r.Name)
	b.rule(ch, note, rateFlowLoad(), one(
		&expr.Dynset{SrcRegKey: tupleReg, SetName: rateFlows(i, b.gen), Operation: unix.NFT_DYNSET_OP_UPDATE}))
	limit := func() *expr.Limit {
		return &expr.Limit{Type: expr.LimitTypePkts, Rate: l.Rate, Unit: expr.LimitTime(l.Unit / time.Second), Burst: l.Burst}
	}
	action := func(a Action) []expr.Any {
		if a == ActionAccept {
			return one(&expr.Counter{}, verdict(expr.VerdictAccept))
		}
		return one(&expr.Counter{}, verdict(expr.VerdictDrop))
	}
	switch l.Key {
	case RateByRule:
		b.rule(ch, note, one(limit()), action(r.Action))
	case RateBySource:
		for _, f := range families {
			s := &nftables.Set{Table: b.t, Name: genName(fmt.Sprintf("%s%d_s%d", rateStem, i, map[bool]int{false: 4, true: 6}[f.v6]), b.gen),
				KeyType: nftables.TypeIPAddr, Dynamic: true, HasTimeout: true, Timeout: l.idle(), Size: l.keys()}
			if f.v6 {
				s.KeyType = nftables.TypeIP6Addr
			}
			if err := b.addGenSet(s, nil); err != nil {
				return err
			}
			b.rule(ch, note, nfproto(f.proto), one(addrLoad(f.v6, true),
				&expr.Dynset{SrcRegKey: 1, SetName: s.Name, Operation: unix.NFT_DYNSET_OP_UPDATE, Exprs: []expr.Any{limit()}}),
				action(r.Action))
		}
	case RateByFlow:
		s := &nftables.Set{Table: b.t, Name: genName(fmt.Sprintf("%s%d_f", rateStem, i), b.gen), KeyType: rateFlowType,
			Dynamic: true, HasTimeout: true, Timeout: l.idle(), Size: l.keys()}
		if err := b.addGenSet(s, nil); err != nil {
			return err
		}
		b.rule(ch, note, rateFlowLoad(), one(
			&expr.Dynset{SrcRegKey: tupleReg, SetName: s.Name, Operation: unix.NFT_DYNSET_OP_UPDATE, Exprs: []expr.Any{limit()}}),
			action(r.Action))
	}
	b.rule(ch, note, action(l.Exceed))
	return nil
}

// ratePolicyRule is a kernel rate rule's rule in the policy chain: mark
// the connection and go to the rule's chain.
func (b *builder) ratePolicyRule(ch *nftables.Chain, i int, r *PolicyRule, match []expr.Any) {
	v, _ := rateFlowMark(b.cfg.Marks)
	b.rule(ch, policyNote(r.Name), match, ctMarkMerge(b.cfg.Marks.Mask, v),
		one(&expr.Verdict{Kind: expr.VerdictJump, Chain: rateChain(i, b.gen)}))
}

// rateFlowRules send the later packets of connections a kernel rate
// limit decided to their rule's chain (kernelFirstRules): one rule per
// rate rule, looking the connection up in the rule's set. (One verdict map
// from a map of connections would be one lookup, but nft cannot print a
// map lookup's result used as a verdict map's key: it aborts.)
func (b *builder) rateFlowRules(ch *nftables.Chain) error {
	if !b.hasRates() {
		return nil
	}
	v, _ := rateFlowMark(b.cfg.Marks)
	for i := range b.cfg.Policy.Rules {
		if !b.kernelRate(&b.cfg.Policy.Rules[i]) {
			continue
		}
		final := append(maskedEq(ctMark(), b.cfg.Marks.Mask, v), rateFlowLoad()...)
		final = append(final, &expr.Lookup{SourceRegister: tupleReg, SetName: rateFlows(i, b.gen)},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: rateChain(i, b.gen)})
		if err := b.steered(ch, "rate-limited flow", final); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) hasRates() bool {
	if b.cfg.Mode != KernelFirst || b.cfg.Policy == nil {
		return false
	}
	for i := range b.cfg.Policy.Rules {
		if b.kernelRate(&b.cfg.Policy.Rules[i]) {
			return true
		}
	}
	return false
}
