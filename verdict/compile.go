package verdict

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/gaissmai/bart"

	"github.com/qguard/qguard/names"
)

// Errors wrapped by Compile.
var (
	ErrNoDefault     = errors.New("policy has no default action")
	ErrBadAction     = errors.New("bad action")
	ErrUnknownSet    = errors.New("unknown prefix set")
	ErrBadPrefix     = errors.New("bad prefix")
	ErrBadPortRange  = errors.New("bad port range")
	ErrBadRateLimit  = errors.New("bad rate limit")
	ErrInterface     = errors.New("interface not found") // by CompileOptions.CheckIface
	ErrDuplicateRule = errors.New("duplicate rule name")
	ErrConflict      = errors.New("conflicting rule options")
)

// CompileError says which rule and which field of it Compile rejected.
// Rule is -1 for errors in the policy itself.
type CompileError struct {
	Rule  int
	Name  string
	Field string
	Err   error
}

func (e *CompileError) Error() string {
	if e.Rule < 0 {
		return fmt.Sprintf("policy: %s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("rule %q (#%d): %s: %v", e.Name, e.Rule, e.Field, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// CompileOptions changes how Compile resolves names. A nil *CompileOptions
// means defaults.
type CompileOptions struct {
	// Ifaces names the interface indexes packets carry, for in_iface and
	// out_iface. nil means SystemIfaces.
	Ifaces *Ifaces
	// CheckIface, when set, is asked about every in_iface and out_iface
	// name (a pattern such as "eth*" included); an error fails the rule.
	// Rule tests use it against their fixed topology. nil: names need not
	// exist.
	CheckIface func(pattern string) error
	// Names is the binding table the dst_name and src_name matchers read
	// and the pipelines feed with the DNS queries and answers they see.
	// nil: those matchers never match.
	Names *names.Table
	// NamePorts are the ports whose DNS messages feed Names; nil means
	// DefaultNamePorts.
	NamePorts []PortRange
}

// DefaultNamePorts are CompileOptions.NamePorts when it is nil.
var DefaultNamePorts = []PortRange{{Lo: 53, Hi: 53}}

// Compiled is a policy in the form the pipeline evaluates: rules with their
// matchers prepared, and an index that narrows the candidate rules of each
// packet. It is read-only once built, safe to share between pipelines, and
// holds the rate limiters' state, so pipelines sharing it share limits.
type Compiled struct {
	rules     []crule
	def       Action
	invalid   Action
	undecided Action
	l7Packets int
	idx       index
	words     int
	l7Any     bool          // some rule has an L7 matcher
	names     [3]*nameIndex // DNS, SNI, HTTP host
	need      [4]bitmap     // rules with a DNS, SNI, HTTP host, payload matcher
	pay       *payloadIndex
	patWords  int         // scratch words for pay
	quicPorts []PortRange // UDP ports where sni rules read QUIC; nil: none
	ifaces    *Ifaces
	bound     boundNames // dst_name and src_name
}

// defaultInvalid is the action for undecodable packets when the policy sets
// none. A packet that cannot be decoded far enough to evaluate the rules
// must not get past a rule that could have matched it, so it gets drop when
// any rule or the default drops or rejects; only a policy that accepts
// everything (observe mode) accepts it.
func defaultInvalid(p *Policy) Action {
	if p.Default == ActionDrop || p.Default == ActionReject {
		return ActionDrop
	}
	for i := range p.Rules {
		if a := p.Rules[i].Action; a == ActionDrop || a == ActionReject {
			return ActionDrop
		}
		if rl := p.Rules[i].RateLimit; rl != nil && rl.Exceed != ActionAccept {
			return ActionDrop // ActionUnset means drop
		}
	}
	return ActionAccept
}

// actionOf returns the action a decision by rule takes (before rate limits).
func (c *Compiled) actionOf(rule int) Action {
	switch {
	case rule >= 0 && rule < len(c.rules):
		return c.rules[rule].action
	case rule == RuleUndecided:
		return c.undecided
	case rule == RuleInvalid:
		return c.invalid
	case rule == RulePending || rule == RuleStage:
		return ActionAccept
	}
	return c.def
}

// L7UndecidedAction returns Policy.L7Undecided, or the drop Compile chose
// when it is unset.
func (c *Compiled) L7UndecidedAction() Action { return c.undecided }

// InvalidAction returns the action for packets that do not decode:
// Policy.Invalid, or the default chosen by Compile when it is unset.
func (c *Compiled) InvalidAction() Action { return c.invalid }

// Len returns the number of rules.
func (c *Compiled) Len() int { return len(c.rules) }

// RuleName returns the name of rule i, or RuleNameDefault, RuleNameInvalid,
// RuleNamePending, RuleNameStage or RuleNameUndecided for the special
// Decision.Rule values.
func (c *Compiled) RuleName(i int) string {
	switch {
	case i >= 0 && i < len(c.rules):
		return c.rules[i].name
	case i == RuleDefault:
		return RuleNameDefault
	case i == RuleInvalid:
		return RuleNameInvalid
	case i == RulePending:
		return RuleNamePending
	case i == RuleStage:
		return RuleNameStage
	case i == RuleUndecided:
		return RuleNameUndecided
	}
	return "unknown"
}

// l7 matcher bits of a rule.
const (
	needDNS = 1 << iota
	needSNI
	needHost
	needPayload
)

// crule is a compiled rule.
type crule struct {
	name string

	// Indexed matchers, kept for Trace's rule-by-rule walk.
	family           uint8
	protos           [4]uint64 // bit set of protocol numbers; all ones when any
	anyProto         bool
	src, dst         []*bart.Lite
	sports, dports   []PortRange
	hasSrc, hasDst   bool
	srcDesc, dstDesc string

	// Residual matchers, checked for each candidate.
	inIf, outIf     []uint32
	inName, outName []ifPattern
	hasIn           bool
	hasOut          bool
	mark            MarkMatch
	hasMark         bool
	uids, gids      []IDRange
	ct              CTStates
	dns, sni        *nameSet
	host            *nameSet
	payload         *payloadSet
	dstName         *nameSet // dst_name
	srcName         *nameSet // src_name
	l7              uint8
	dnsPort         bool // dports is the implied [53] of a dns matcher
	perPacket       bool // mark or conntrack state: the decision cannot be cached
	residual        bool

	// Action and options.
	action      Action
	mark2       uint32
	setMark     bool
	log         bool
	flow        bool
	blockSource time.Duration
	limit       *limiter
	alert       Action // an alert rule: what it trials (action is accept)
}

// Compile checks p and builds its evaluated form, resolving interface names
// with net.InterfaceByName.
func Compile(p *Policy) (*Compiled, error) { return CompileWith(p, nil) }

// CompileWith is Compile with options. Every problem found is returned,
// joined with errors.Join; each is a *CompileError. Interface names are not
// resolved: an interface that does not exist yet matches once it appears.
func CompileWith(p *Policy, o *CompileOptions) (*Compiled, error) {
	var errs []error
	fail := func(rule int, name, field string, err error) {
		errs = append(errs, &CompileError{Rule: rule, Name: name, Field: field, Err: err})
	}
	if p.Default == ActionUnset {
		fail(-1, "", "default", ErrNoDefault)
	} else if p.Default >= ActionAlert {
		fail(-1, "", "default", fmt.Errorf("%w: %v: expected accept, drop or reject (alert is for rules)", ErrBadAction, p.Default))
	}
	if p.Invalid >= ActionAlert {
		fail(-1, "", "invalid", fmt.Errorf("%w: %v: expected accept, drop or reject", ErrBadAction, p.Invalid))
	}
	if p.L7Undecided >= ActionAlert {
		fail(-1, "", "l7_undecided", fmt.Errorf("%w: %v: expected accept, drop or reject", ErrBadAction, p.L7Undecided))
	}
	for name, ps := range p.Sets {
		for _, pf := range ps {
			if !pf.IsValid() {
				fail(-1, "", "sets."+name, fmt.Errorf("%w: %v", ErrBadPrefix, pf))
			}
		}
	}
	ifaces := SystemIfaces()
	var check func(string) error
	if o != nil && o.Ifaces != nil {
		ifaces = o.Ifaces
	}
	if o != nil {
		check = o.CheckIface
	}
	n := len(p.Rules)
	words := max(1, (n+63)/64)
	c := &Compiled{rules: make([]crule, n), def: p.Default, invalid: p.Invalid,
		l7Packets: p.L7Packets, words: words, ifaces: ifaces}
	if c.invalid == ActionUnset {
		c.invalid = defaultInvalid(p)
	}
	if c.undecided = p.L7Undecided; c.undecided == ActionUnset {
		c.undecided = ActionDrop
	}
	if c.l7Packets <= 0 {
		c.l7Packets = DefaultL7Packets
	}
	if c.l7Packets > 255 {
		c.l7Packets = 255
	}
	setTables := map[string]*bart.Lite{}
	names := map[string]int{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if j, dup := names[r.Name]; dup && r.Name != "" {
			fail(i, r.Name, "name", fmt.Errorf("%w: also rule #%d", ErrDuplicateRule, j))
		}
		names[r.Name] = i
		for _, err := range compileRule(&c.rules[i], r, p.Sets, setTables, check) {
			fail(i, r.Name, err.field, err.err)
		}
		c.l7Any = c.l7Any || c.rules[i].l7 != 0
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.quicPorts = quicPortsOf(c.rules)
	c.bound = newBoundNames(p, o)
	c.buildIndex(p)
	if err := c.buildL7Index(p); err != nil {
		return nil, &CompileError{Rule: -1, Field: "payload", Err: err}
	}
	return c, nil
}

type fieldErr struct {
	field string
	err   error
}

// ruleCompiler compiles one rule, collecting the problems of every field.
type ruleCompiler struct {
	cr        *crule
	r         *Rule
	sets      map[string][]netip.Prefix
	setTables map[string]*bart.Lite
	check     func(string) error
	errs      []fieldErr
}

func (rc *ruleCompiler) fail(field string, err error) {
	rc.errs = append(rc.errs, fieldErr{field, err})
}

// nameSet compiles the name patterns of one field (dns, sni, http_host,
// dst_name, src_name): nil when there are none or they are wrong (the
// error is recorded).
func (rc *ruleCompiler) nameSet(field string, pats []string) *nameSet {
	if len(pats) == 0 {
		return nil
	}
	s, err := newNameSet(pats)
	if err != nil {
		rc.fail(field, err)
		return nil
	}
	return s
}

func compileRule(cr *crule, r *Rule, sets map[string][]netip.Prefix, setTables map[string]*bart.Lite,
	check func(string) error) []fieldErr {
	rc := &ruleCompiler{cr: cr, r: r, sets: sets, setTables: setTables, check: check}
	cr.name = r.Name
	if r.Name == "" {
		rc.fail("name", errors.New("rule has no name"))
	}
	rc.l34()
	rc.meta()
	rc.l7()
	rc.boundNames()
	if cr.dns != nil && len(cr.dports) == 0 {
		// Only DNS flows can carry a DNS name: without this, a TCP flow to
		// any port would wait for a name that never comes (its first bytes
		// may even look like a DNS length prefix and ask for more). A rule
		// that lists dports says itself which ports carry DNS (e.g. 5353).
		cr.dports, cr.dnsPort = dnsPorts, true
	}
	rc.options()
	cr.perPacket = cr.hasMark || cr.ct != 0
	// Interfaces are indexed like addresses and ports: not residual.
	cr.residual = cr.hasMark || len(cr.uids) > 0 || len(cr.gids) > 0 || cr.ct != 0 || cr.l7 != 0 ||
		cr.dstName != nil || cr.srcName != nil
	return rc.errs
}

// l34 prepares the matchers the index covers.
func (rc *ruleCompiler) l34() {
	cr, m := rc.cr, &rc.r.Match
	if m.Family != 0 && m.Family != 4 && m.Family != 6 {
		rc.fail("family", fmt.Errorf("family %d: expected 4 or 6", m.Family))
	}
	cr.family = m.Family
	cr.anyProto = len(m.Protos) == 0
	for _, pr := range m.Protos {
		cr.protos[pr>>6] |= 1 << (pr & 63)
	}
	if cr.anyProto {
		cr.protos = [4]uint64{math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64}
	}
	var err error
	if cr.src, cr.srcDesc, err = prefixTables(m.Src, m.SrcSets, rc.sets, rc.setTables); err != nil {
		rc.fail("src", err)
	}
	if cr.dst, cr.dstDesc, err = prefixTables(m.Dst, m.DstSets, rc.sets, rc.setTables); err != nil {
		rc.fail("dst", err)
	}
	cr.hasSrc, cr.hasDst = len(cr.src) > 0, len(cr.dst) > 0
	for _, pr := range append(append([]PortRange(nil), m.SrcPorts...), m.DstPorts...) {
		if pr.Lo > pr.Hi {
			rc.fail("port", fmt.Errorf("%w: %d-%d: the first port is above the last", ErrBadPortRange, pr.Lo, pr.Hi))
		}
	}
	cr.sports, cr.dports = m.SrcPorts, m.DstPorts
}

// meta prepares the matchers on the queue's meta data.
func (rc *ruleCompiler) meta() {
	cr, m := rc.cr, &rc.r.Match
	cr.inIf, cr.outIf = m.InIfIndexes, m.OutIfIndexes
	cr.inName, cr.outName = rc.ifPatterns("in_iface", m.InIfaces), rc.ifPatterns("out_iface", m.OutIfaces)
	cr.hasIn, cr.hasOut = len(cr.inIf)+len(cr.inName) > 0, len(cr.outIf)+len(cr.outName) > 0
	if m.Mark != nil {
		cr.mark, cr.hasMark = *m.Mark, true
		cr.mark.Value &= cr.mark.Mask
	}
	cr.uids, cr.gids, cr.ct = m.UIDs, m.GIDs, m.CT
}

// dnsPorts are the destination ports of a rule with a dns matcher and no
// dport of its own: DNS (RFC 1035 4.2), over UDP and TCP. mDNS (5353) is
// not implied: its queries are multicast and rarely worth a rule; a rule
// that wants it lists dport [53, 5353].
var dnsPorts = []PortRange{{Lo: 53, Hi: 53}}

// l7 prepares the name and payload matchers.
func (rc *ruleCompiler) l7() {
	cr, m := rc.cr, &rc.r.Match
	for _, f := range []struct {
		field string
		pats  []string
		dst   **nameSet
		bit   uint8
	}{{"dns", m.DNS, &cr.dns, needDNS}, {"sni", m.SNI, &cr.sni, needSNI}, {"http_host", m.HTTPHost, &cr.host, needHost}} {
		if *f.dst = rc.nameSet(f.field, f.pats); *f.dst != nil {
			cr.l7 |= f.bit
		}
	}
	if len(m.Payload) > 0 {
		ps, err := newPayloadSet(m.Payload)
		if err != nil {
			rc.fail("payload", err)
			return
		}
		cr.payload = ps
		cr.l7 |= needPayload
	}
}

// options checks the action and the rule's options.
func (rc *ruleCompiler) options() {
	cr, r := rc.cr, rc.r
	if r.Action == ActionUnset || r.Action >= numActions {
		rc.fail("action", fmt.Errorf("%w: %d: expected accept, drop, reject or alert", ErrBadAction, r.Action))
	}
	cr.action, cr.mark2, cr.setMark, cr.log = r.Action, r.Mark, r.SetMark, r.Log
	rc.alert()
	cr.flow, cr.blockSource = r.Flow, r.BlockSource
	if r.BlockSource < 0 {
		rc.fail("block_source", fmt.Errorf("negative duration %v", r.BlockSource))
	}
	if rl := r.RateLimit; rl != nil {
		if r.Flow {
			rc.fail("rate_limit", fmt.Errorf("%w: a rate limit needs every packet, flow: true hands the flow to the kernel", ErrConflict))
		}
		l, err := newLimiter(rl)
		if err != nil {
			rc.fail("rate_limit", err)
		}
		cr.limit = l
	}
}

// alert turns an alert rule into an accept that reports what it trials.
func (rc *ruleCompiler) alert() {
	cr, r := rc.cr, rc.r
	if r.Action != ActionAlert {
		if r.AlertAs != ActionUnset {
			rc.fail("alert_as", fmt.Errorf("%w: alert_as goes with action: alert", ErrConflict))
		}
		return
	}
	switch r.AlertAs {
	case ActionUnset, ActionDrop:
		cr.alert = ActionDrop
	case ActionReject:
		cr.alert = ActionReject
	default:
		rc.fail("alert_as", fmt.Errorf("%w: %v: expected drop or reject", ErrBadAction, r.AlertAs))
	}
	cr.action, cr.log = ActionAccept, true // a trial is for reading
	if r.BlockSource > 0 {
		rc.fail("block_source", fmt.Errorf("%w: an alert rule only reports; block_source would enforce it", ErrConflict))
	}
}

func prefixTables(own []netip.Prefix, names []string, sets map[string][]netip.Prefix,
	cache map[string]*bart.Lite) ([]*bart.Lite, string, error) {
	var out []*bart.Lite
	desc := ""
	if len(own) > 0 {
		t := new(bart.Lite)
		for _, p := range own {
			if !p.IsValid() {
				return nil, "", fmt.Errorf("%w: %v", ErrBadPrefix, p)
			}
			t.Insert(p.Masked())
		}
		out = append(out, t)
		desc = fmt.Sprintf("%d prefixes", len(own))
		if len(own) <= 4 {
			desc = fmt.Sprint(own)
		}
	}
	for _, name := range names {
		ps, ok := sets[name]
		if !ok {
			return nil, "", fmt.Errorf("%w %q", ErrUnknownSet, name)
		}
		t := cache[name]
		if t == nil {
			t = new(bart.Lite)
			for _, p := range ps {
				if p.IsValid() {
					t.Insert(p.Masked())
				}
			}
			cache[name] = t
		}
		out = append(out, t)
		if desc != "" {
			desc += " + "
		}
		desc += fmt.Sprintf("set %s (%d prefixes)", name, len(ps))
	}
	return out, desc, nil
}

func (rc *ruleCompiler) ifPatterns(field string, names []string) []ifPattern {
	var out []ifPattern
	for _, n := range names {
		p, err := parseIfPattern(n)
		if err != nil {
			rc.fail(field, err)
			continue
		}
		if rc.check != nil {
			if err := rc.check(n); err != nil {
				rc.fail(field, fmt.Errorf("%w: %q: %v", ErrInterface, n, err))
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

func (c *Compiled) buildL7Index(p *Policy) error {
	n, rs := len(p.Rules), p.Rules
	c.names[0] = buildNameIndex(c.words, n, func(i int) []string { return rs[i].Match.DNS })
	c.names[1] = buildNameIndex(c.words, n, func(i int) []string { return rs[i].Match.SNI })
	c.names[2] = buildNameIndex(c.words, n, func(i int) []string { return rs[i].Match.HTTPHost })
	for k := range c.need {
		c.need[k] = newBitmap(c.words)
		for i := range c.rules {
			if c.rules[i].l7&(1<<k) != 0 {
				c.need[k].set(i)
			}
		}
	}
	pay, err := buildPayloadIndex(n, func(i int) [][]byte { return rs[i].Match.Payload })
	if err != nil {
		return err
	}
	c.pay = pay
	if pay.m != nil {
		c.patWords = pay.m.SetWords()
	}
	return nil
}

func (c *Compiled) buildIndex(p *Policy) {
	n, w := len(c.rules), c.words
	x := &c.idx
	x.words = w
	x.fam = [2]bitmap{newBitmap(w), newBitmap(w)}
	x.proto = bitmaps{words: w, data: make([]uint64, 256*w)}
	for i := range c.rules {
		r := &c.rules[i]
		if r.family != 6 {
			x.fam[0].set(i)
		}
		if r.family != 4 {
			x.fam[1].set(i)
		}
		for pr := 0; pr < 256; pr++ {
			if r.protos[pr>>6]&(1<<(pr&63)) != 0 {
				x.proto.at(pr).set(i)
			}
		}
	}
	x.inIf = buildIfIndex(n, w, func(i int) ([]uint32, bool) { return c.rules[i].inIf, c.rules[i].hasIn })
	x.outIf = buildIfIndex(n, w, func(i int) ([]uint32, bool) { return c.rules[i].outIf, c.rules[i].hasOut })
	inPats, outPats := make([][]ifPattern, n), make([][]ifPattern, n)
	for i := range c.rules {
		inPats[i], outPats[i] = c.rules[i].inName, c.rules[i].outName
	}
	x.inName, x.outName = newIfNameIndex(c.ifaces, w, inPats), newIfNameIndex(c.ifaces, w, outPats)
	x.sport = buildPortIndex(n, w, func(i int) []PortRange { return c.rules[i].sports })
	x.dport = buildPortIndex(n, w, func(i int) []PortRange { return c.rules[i].dports })
	x.src = buildPrefixIndex(n, w, func(i int) prefixSource {
		return prefixSource{p.Rules[i].Match.Src, p.Rules[i].Match.SrcSets}
	}, p.Sets)
	x.dst = buildPrefixIndex(n, w, func(i int) prefixSource {
		return prefixSource{p.Rules[i].Match.Dst, p.Rules[i].Match.DstSets}
	}, p.Sets)
}
