package rules

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names of the sets in qguard's table.
const (
	Block4Set = "block4"
	Block6Set = "block6"
	// DropFlow4Set and DropFlow6Set hold the tuples of flows decided
	// DropFlow. A packet dropped before its conntrack entry is confirmed
	// takes the entry (and its mark) with it, so the mark alone cannot keep
	// a flow dropped whose first packet was the one decided.
	DropFlow4Set = "dropflow4"
	DropFlow6Set = "dropflow6"
)

// rejectHooks are the hooks where the kernel accepts the reject expression
// (nft_reject_validate); elsewhere a Reject mark drops.
var rejectHooks = map[string]bool{"prerouting": true, "input": true, "forward": true, "output": true}

// builder queues the messages of one transaction on a Conn. It does no I/O.
type builder struct {
	c    *nftables.Conn
	cfg  *Config
	impl QueueImpl
	caps Capabilities
	t    *nftables.Table
	// sets are the named sets already in the table; used collects the
	// steering sets this transaction adds, all of generation gen.
	sets, used map[string]bool
	gen        uint64
	ruleIdx    int // the policy rule being compiled, for its name sets
	// blocks adds the block set lookups to the hook chains (see
	// Manager.blocking).
	blocks bool
}

func inetTable(name string) *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: name}
}

func blockSets(t *nftables.Table, timeout time.Duration) (s4, s6 *nftables.Set) {
	s4 = &nftables.Set{Table: t, Name: Block4Set, KeyType: nftables.TypeIPAddr, HasTimeout: true, Timeout: timeout}
	s6 = &nftables.Set{Table: t, Name: Block6Set, KeyType: nftables.TypeIP6Addr, HasTimeout: true, Timeout: timeout}
	return s4, s6
}

func dropFlowSets(t *nftables.Table, timeout time.Duration) (s4, s6 *nftables.Set) {
	mk := func(name string, v6 bool) *nftables.Set {
		return &nftables.Set{Table: t, Name: name, KeyType: tupleType(v6), Concatenation: true,
			HasTimeout: true, Timeout: timeout, Dynamic: true}
	}
	return mk(DropFlow4Set, false), mk(DropFlow6Set, true)
}

// blockNote is the comment of the block set lookups.
const blockNote = "blocked source"

// blockRule is `ip saddr @block4 drop` (v6: ip6, block6) in ch. The hook
// chains hold the two only while a block can be in the sets: they are
// the first rules every packet meets, and an empty set's lookup is a
// hash of every packet's source for nothing.
func blockRule(t *nftables.Table, ch *nftables.Chain, v6 bool) *nftables.Rule {
	fam, set := byte(unix.NFPROTO_IPV4), Block4Set
	if v6 {
		fam, set = unix.NFPROTO_IPV6, Block6Set
	}
	exprs := append(nfproto(fam), addrLoad(v6, true), &expr.Lookup{SourceRegister: 1, SetName: set},
		&expr.Counter{}, verdict(expr.VerdictDrop))
	return &nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: comment(blockNote)}
}

// canBlock reports whether a rule of the policy puts sources in the block
// sets: in the kernel (a dynset in the policy chain) or through user space.
func (c *Config) canBlock() bool {
	if c.Policy == nil {
		return false
	}
	for i := range c.Policy.Rules {
		if c.Policy.Rules[i].BlockSource > 0 {
			return true
		}
	}
	return false
}

func baseChain(t *nftables.Table, h Hook) *nftables.Chain {
	num := nftables.ChainHook(hookNums[h.Name])
	prio := nftables.ChainPriority(h.Priority)
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name: h.Name, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: &num, Priority: &prio, Policy: &accept,
	}
}

func comment(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, "qguard: "+s)
}

// jump makes base chain ch jump to target, the chain of generation gen.
func (b *builder) jump(ch *nftables.Chain, target string, gen uint64) {
	b.rule(ch, fmt.Sprintf("generation %d", gen), one(&expr.Verdict{Kind: expr.VerdictJump, Chain: target}))
}

// rule adds one rule to ch.
func (b *builder) rule(ch *nftables.Chain, note string, exprs ...[]expr.Any) {
	var all []expr.Any
	for _, e := range exprs {
		all = append(all, e...)
	}
	b.c.AddRule(&nftables.Rule{Table: b.t, Chain: ch, Exprs: all, UserData: comment(note)})
}

func one(e ...expr.Any) []expr.Any { return e }

// families are the address families of an inet chain.
var families = []struct {
	proto   byte
	v6      bool
	dropSet string
}{{unix.NFPROTO_IPV4, false, DropFlow4Set}, {unix.NFPROTO_IPV6, true, DropFlow6Set}}

// chainRules adds the rules of hook's generation chain ch; steerAway
// replaces the queue verdict with accept.
func (b *builder) chainRules(ch *nftables.Chain, hook string, steerAway bool) error {
	m := b.cfg.Marks
	counter := func() expr.Any { return &expr.Counter{} }
	if b.blocks {
		for _, v6 := range []bool{false, true} {
			b.c.AddRule(blockRule(b.t, ch, v6))
		}
	}
	// The connection's mark decides most packets (every later packet of a
	// flow decided as a whole, both ways): test it right after the block
	// sets, before the verdict-mark rules, which only re-injected packets
	// match.
	if b.cfg.Offload {
		b.rule(ch, "offloaded flow accepted", maskedEq(ctMark(), m.Mask, m.AcceptFlow), one(counter(), verdict(expr.VerdictAccept)))
		b.rule(ch, "offloaded flow dropped", maskedEq(ctMark(), m.Mask, m.DropFlow), one(counter(), verdict(expr.VerdictDrop)))
	} else if b.cfg.Mode == KernelFirst {
		b.rule(ch, "flow accepted in the kernel", maskedEq(ctMark(), m.Mask, m.AcceptFlow), one(counter(), verdict(expr.VerdictAccept)))
	}
	if b.cfg.Offload {
		for _, f := range families {
			b.rule(ch, "dropped flow", nfproto(f.proto), tupleLoad(f.v6),
				one(&expr.Lookup{SourceRegister: tupleReg, SetName: f.dropSet}, counter(), verdict(expr.VerdictDrop)))
		}
	}
	var merge []expr.Any
	if b.cfg.Offload {
		merge = ctMarkMerge(m.Mask, m.AcceptFlow)
	}
	b.rule(ch, "verdict accept flow", maskedEq(metaMark(), m.Mask, m.AcceptFlow), merge, one(counter(), verdict(expr.VerdictAccept)))
	if b.cfg.Offload {
		for _, f := range families {
			b.rule(ch, "verdict drop flow", maskedEq(metaMark(), m.Mask, m.DropFlow), nfproto(f.proto),
				ctMarkMerge(m.Mask, m.DropFlow), tupleLoad(f.v6),
				one(&expr.Dynset{SrcRegKey: tupleReg, SetName: f.dropSet, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: b.cfg.FlowTimeout},
					counter(), verdict(expr.VerdictDrop)))
		}
	}
	b.rule(ch, "verdict drop", maskedEq(metaMark(), m.Mask, m.DropFlow), one(counter(), verdict(expr.VerdictDrop)))
	if rejectHooks[hook] {
		b.rule(ch, "verdict reject", maskedEq(metaMark(), m.Mask, m.Reject), one(
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			counter(), &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}))
		b.rule(ch, "verdict reject", maskedEq(metaMark(), m.Mask, m.Reject), one(
			counter(), &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}))
	} else {
		b.rule(ch, "verdict reject (drop: no reject at this hook)", maskedEq(metaMark(), m.Mask, m.Reject), one(counter(), verdict(expr.VerdictDrop)))
	}
	return b.queueRules(ch, hook, steerAway)
}

// queueRules adds the steering rule(s): one, or one per address family when
// address prefixes are configured. In mode KernelFirst, steered packets of
// new connections go to the policy chain first (kernelFirstRules).
func (b *builder) queueRules(ch *nftables.Chain, hook string, steerAway bool) error {
	if err := b.nameDNSRules(ch, steerAway); err != nil {
		return err
	}
	if b.cfg.Mode == KernelFirst {
		return b.kernelFirstRules(ch, hook, b.policyChainName(hook), steerAway)
	}
	// The kernel's answer to a packet it rejects (TCP reset, ICMP error)
	// carries that packet's unconfirmed conntrack entry, which the packet
	// still holds. nfnetlink_queue drops a packet whose unconfirmed entry is
	// shared (nf_ct_drop_unconfirmed), so queued, the answer would be lost
	// and a local sender would wait for its timeout instead of seeing the
	// refusal (TestIntegrationLocalReject). Queueing it could only drop it.
	b.kernelAnswerRule(ch, hook)
	note := "steer to queue"
	if steerAway && b.cfg.Bypass {
		note = "steered away (shutdown)"
	}
	return b.steered(ch, note, one(&expr.Counter{}, b.queueVerdict(steerAway)))
}

// steerMatch returns the matchers of Config.Steer common to all families.
func (b *builder) steerMatch() ([]expr.Any, error) {
	s := &b.cfg.Steer
	out, err := b.steerIfMatch()
	if err != nil {
		return nil, err
	}
	if ps := b.cfg.protocols(); len(ps) > 0 {
		var keys [][]byte
		for _, p := range ps {
			keys = append(keys, []byte{p})
		}
		m, err := b.match(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, nftables.TypeInetProto, keys)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	for _, p := range []struct {
		src bool
		rs  []PortRange
	}{{true, s.SPorts}, {false, s.DPorts}} {
		if len(p.rs) == 0 {
			continue
		}
		m, err := b.portMatch(p.src, p.rs)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	if s.NewOnly {
		out = append(out,
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(expr.CtStateBitNEW), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
	}
	return out, nil
}

// steerIfMatch returns the interface matchers of Config.Steer.
func (b *builder) steerIfMatch() ([]expr.Any, error) {
	s := &b.cfg.Steer
	var out []expr.Any
	for _, ifs := range []struct {
		key   expr.MetaKey
		names []string
	}{{expr.MetaKeyIIFNAME, s.InIfs}, {expr.MetaKeyOIFNAME, s.OutIfs}} {
		if len(ifs.names) == 0 {
			continue
		}
		m, err := b.ifMatch(ifs.key, ifs.names)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

// match is `load == key` for one key, `load { keys }` for several.
func (b *builder) match(load expr.Any, typ nftables.SetDatatype, keys [][]byte) ([]expr.Any, error) {
	if len(keys) == 1 {
		return one(load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: keys[0]}), nil
	}
	s := anonSet(b.t, typ, false)
	el := make([]nftables.SetElement, len(keys))
	for i, k := range keys {
		el[i].Key = k
	}
	if err := b.c.AddSet(s, el); err != nil {
		return nil, fmt.Errorf("add %s set: %w", typ.Name, err)
	}
	return one(load, lookup(s)), nil
}

func (b *builder) portMatch(src bool, rs []PortRange) ([]expr.Any, error) {
	if len(rs) == 1 {
		r := rs[0]
		if r.Lo == r.Hi {
			return one(portLoad(src), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(r.Lo)}), nil
		}
		return one(portLoad(src), &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(r.Lo), ToData: be16(r.Hi)}), nil
	}
	s := anonSet(b.t, nftables.TypeInetService, true)
	if err := b.c.AddSet(s, portElems(rs)); err != nil {
		return nil, fmt.Errorf("add port set: %w", err)
	}
	return one(portLoad(src), lookup(s)), nil
}

// addrMatch returns the address matchers for one family, ok false when the
// configured prefixes leave that family out.
func (b *builder) addrMatch(v6 bool) (_ []expr.Any, ok bool, _ error) {
	fam, typ := byte(unix.NFPROTO_IPV4), nftables.TypeIPAddr
	if v6 {
		fam, typ = unix.NFPROTO_IPV6, nftables.TypeIP6Addr
	}
	out := nfproto(fam)
	s := &b.cfg.Steer
	for _, l := range []struct {
		src bool
		ps  []netip.Prefix
	}{{true, s.Sources}, {false, s.Destinations}} {
		if len(l.ps) == 0 {
			continue
		}
		m, ok, err := b.prefixLookup(v6, l.src, typ, l.ps)
		if !ok || err != nil {
			return nil, false, err
		}
		out = append(out, m...)
	}
	return out, true, nil
}

// prefixLookup is `ip saddr/daddr { prefixes }` for one family; ok is false
// when no prefix is of that family (the match can never hold there).
func (b *builder) prefixLookup(v6, src bool, typ nftables.SetDatatype, ps []netip.Prefix) (_ []expr.Any, ok bool, _ error) {
	el := prefixElems(ps, v6)
	if el == nil {
		return nil, false, nil
	}
	set := anonSet(b.t, typ, true)
	if err := b.c.AddSet(set, el); err != nil {
		return nil, false, fmt.Errorf("add address set: %w", err)
	}
	return one(addrLoad(v6, src), lookup(set)), true, nil
}

// Stems of the interface sets' names (each generation has its own, see
// genName). They are named rather than anonymous so the set can say its
// keys are host-endian strings and `nft list` shows the names (anonymous
// sets are always marked big-endian by the library).
const (
	inIfSet  = "steer_iifname"
	outIfSet = "steer_oifname"
)

// ifMatch is `iifname/oifname "x"` for one name, a named set for several.
func (b *builder) ifMatch(key expr.MetaKey, names []string) ([]expr.Any, error) {
	load := &expr.Meta{Key: key, Register: 1}
	if len(names) == 1 {
		return one(load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(names[0])}), nil
	}
	name := inIfSet
	if key == expr.MetaKeyOIFNAME {
		name = outIfSet
	}
	if b.gen > 0 { // 0: the previous layout's unsuffixed name (tests only)
		name = genName(name, b.gen)
	}
	s := &nftables.Set{Table: b.t, Name: name, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	el := make([]nftables.SetElement, 0, len(names))
	for _, n := range names {
		el = append(el, nftables.SetElement{Key: ifname(n)})
	}
	if !b.used[name] {
		b.used[name] = true
		if err := b.c.AddSet(s, el); err != nil {
			return nil, fmt.Errorf("add set %s: %w", name, err)
		}
	}
	return one(load, &expr.Lookup{SourceRegister: 1, SetName: name}), nil
}
