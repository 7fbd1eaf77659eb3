package verdict

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/qguard/qguard/verdict/packet"
)

// Options configure a Pipeline. A nil *Options means defaults.
type Options struct {
	Flows *FlowConfig // nil: defaults
	// LogRate limits Decision.Log: at most this many log lines are asked
	// for. The zero Rate means DefaultLogRate; Events 0 with a Per disables
	// logging.
	LogRate Rate
	// Now is the clock; nil means reading the monotonic clock on every
	// Decide. A caller that knows the time already saves that read: the
	// engine gives the time its queue received the packet's batch
	// (queue.Packet.Received). Tests set it to move time.
	Now func() time.Time
}

// DefaultLogRate is Options.LogRate when it is zero.
var DefaultLogRate = Rate{Events: 10, Per: time.Second}

// PipelineStats are a pipeline's counters. They may be read from any
// goroutine.
type PipelineStats struct {
	Packets   uint64 // Decide calls
	Invalid   uint64 // packets that did not decode
	Cached    uint64 // decided from the flow table
	Evaluated uint64 // ran through the stages and rules
	Pending   uint64 // accepted while waiting for L7 data
	Limited   uint64 // got a rate limit's exceed action
	Undecided uint64 // decided by Policy.L7Undecided, or dropped out of order while inspected
	Alerts    uint64 // packets an alert rule decided (accepted, reported as would-drop or would-reject)
	LogDenied uint64 // log lines suppressed by the log rate limit
	Flows     FlowStats
}

// Pipeline decides packets: decode, flow lookup, cached decision or user
// stages and rules. One pipeline serves one queue and is used by one
// goroutine: Decide, Trace and Use are not safe for concurrent use. Swap
// and Stats are, so a reload or a metrics scrape can run elsewhere.
// Decision.Rule says which rule decided a packet; the caller counts them
// (the engine keeps counts by rule name across reloads).
//
// Rules judge a flow, not a packet: the flow's first packet (from its
// initiator) is evaluated and the decision is kept in the flow table for
// both directions, so replies need no rules of their own. A reject is the
// exception: in the reply direction a TCP reset passes (the kernel's own
// answer to the rejected initiator) and other packets are dropped. A flow first met
// through a reply is judged from the initiator's side when the queue
// delivers conntrack state, and as it comes otherwise.
//
// A decision is not cached when a rule consulted on the way matched on the
// packet mark or conntrack state, which change from packet to packet; such
// flows are evaluated on every packet. Rate limits and marks apply to every
// packet of a cached flow; block_source and log only to the packet that
// decided it.
//
// When a rule that could match needs L7 data (DNS name, TLS server name,
// HTTP host, payload) that the packet lacks (a TCP handshake), the flow is
// pending: its packets are accepted (Decision.Rule RulePending) and the
// initiator's next packets are evaluated again, until the data arrives.
// Policy.L7Packets bounds the packets carrying data a flow may send while
// the data is incomplete; then, and for data that is malformed or beyond
// the reassembly bounds, Policy.L7Undecided decides (RuleUndecided). Data
// that is not the protocol, or a complete message without the name, rules
// the name's rules out for the flow at once, and a dns matcher only looks
// at port 53 (or the rule's own dports).
//
// DNS messages and HTTP/1.x requests are judged one by one: every UDP
// datagram, every message of a TCP DNS stream and every request of an HTTP
// connection, with the first one in a packet that is not accepted deciding
// the packet. Such flows are not cached as accepted nor offloaded; packets
// that only continue a message get its decision. Out-of-order segments of
// a stream under inspection are dropped (RuleUndecided) so that the sender
// retransmits them in order. Non-first IP fragments carry no ports: they are
// judged alone, port matchers failing, and not tracked. docs/inspection.md
// says what is inspected and what is out of reach.
type Pipeline struct {
	state  atomic.Pointer[pipeState]
	flows  *FlowTable
	stages []Stage
	now    func() time.Time
	start  time.Time

	tap dnsTap // DNS queries and answers for the name bindings

	pkt      packet.Packet
	noMeta   Meta // used when Decide gets a nil Meta
	flipMeta Meta // a reply's meta seen from the initiator's side
	x        inspect
	ctx      Context
	cand     bitmap

	logRate, logTokens, logBurst float64
	logLast                      int64

	packets, invalid, cached, evaluated, pending, limited, logDenied, undecided, alerts atomic.Uint64
}

// pipeState pairs the policy with a generation number: flow decisions made
// under another generation are stale.
type pipeState struct {
	c   *Compiled
	gen uint32
}

func newState(c *Compiled, gen uint32) *pipeState {
	return &pipeState{c: c, gen: gen}
}

// NewPipeline returns a pipeline evaluating c.
func NewPipeline(c *Compiled, o *Options) *Pipeline {
	var opt Options
	if o != nil {
		opt = *o
	}
	p := &Pipeline{flows: NewFlowTable(opt.Flows), now: opt.Now}
	if p.now != nil {
		p.start = p.now()
	}
	lr := opt.LogRate
	if lr.Per == 0 {
		lr = DefaultLogRate
	}
	p.logRate = lr.PerSecond() / 1e9
	p.logBurst = math.Max(1, math.Ceil(lr.PerSecond()))
	if lr.Events <= 0 {
		p.logBurst = 0
	}
	p.logTokens = p.logBurst
	p.state.Store(newState(c, 1))
	p.cand = make(bitmap, c.words)
	p.flows.quics.clock = p.clock
	return p
}

// Swap replaces the policy. It is safe to call from any goroutine while
// Decide runs; cached flow decisions of the old policy are ignored from the
// next packet on.
func (p *Pipeline) Swap(c *Compiled) {
	for {
		old := p.state.Load()
		if p.state.CompareAndSwap(old, newState(c, old.gen+1)) {
			return
		}
	}
}

// Compiled returns the policy in use.
func (p *Pipeline) Compiled() *Compiled { return p.state.Load().c }

// FlowTable returns the pipeline's flow table.
func (p *Pipeline) FlowTable() *FlowTable { return p.flows }

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() PipelineStats {
	return PipelineStats{
		Packets: p.packets.Load(), Invalid: p.invalid.Load(), Cached: p.cached.Load(),
		Evaluated: p.evaluated.Load(), Pending: p.pending.Load(), Limited: p.limited.Load(),
		LogDenied: p.logDenied.Load(), Undecided: p.undecided.Load(), Alerts: p.alerts.Load(), Flows: p.flows.Stats(),
	}
}

// Decide decides the IP packet raw with meta data m (nil: none) into d. It
// does not allocate. Slices the stages see point into raw.
func (p *Pipeline) Decide(raw []byte, m *Meta, d *Decision) {
	p.tap.kind = tapNone
	p.decide(raw, m, d)
	if p.tap.kind != tapNone {
		p.tap.commit(d)
	}
}

func (p *Pipeline) decide(raw []byte, m *Meta, d *Decision) {
	st := p.state.Load()
	c := st.c
	if m == nil {
		m = &p.noMeta
	}
	*d = Decision{}
	p.x.got = 0 // SeenNames: nothing read yet from this packet (a cached one reads none)
	now := p.clock()
	if p.packets.Add(1)&15 == 0 {
		p.flows.tick(now)
	}
	pk := &p.pkt
	if !packet.Decode(raw, pk) {
		p.invalid.Add(1)
		d.Action, d.Rule, d.Reason = c.invalid, RuleInvalid, pk.Invalid
		return
	}
	if c.bound.tab != nil {
		p.tap.peek(c, pk)
	}
	if pk.FragOffset != 0 {
		// Non-first fragments have no ports and no flow: judge them alone.
		p.evaluate(c, raw, m, d, nil, nil, false, now)
		return
	}
	k, srcIsA := makeKey(pk)
	closing := pk.Proto == packet.ProtoTCP && pk.TCPFlags&(packet.TCPFin|packet.TCPRst) != 0
	e, found := p.flows.get(&k, k.hash(p.flows.seed), now, closing)
	reply := false
	if found {
		reply = srcIsA != (e.flags&flowAIsInit != 0)
		if e.gen == st.gen && e.flags&flowDecided != 0 && !p.flows.quicRecheck(c, e, pk, reply) {
			p.cached.Add(1)
			d.Cached = true
			p.apply(c, int(e.rule), &k, d, false, reply, now)
			return
		}
		if e.gen != st.gen {
			e.gen, e.pkts, e.flags = st.gen, 0, e.flags&^(flowDecided|flowPerMsg)
		} else if reply {
			// Undecided flow, responder's packet (a SYN-ACK), or the
			// answers of a flow judged message by message: the flow is
			// judged on its initiator's packets.
			if e.flags&flowPerMsg != 0 && c.actionOf(int(e.rule)) == ActionAccept {
				p.apply(c, int(e.rule), &k, d, false, true, now)
				d.Offload = false
				return
			}
			p.pending.Add(1)
			d.Action, d.Rule = ActionAccept, RulePending
			return
		}
	} else {
		e.gen = st.gen
		// A flow first met through a reply (its entry expired or was
		// evicted, or qguard started mid-flow): conntrack knows the
		// direction, so the flow is still judged from its initiator's side.
		reply = m.HasCT && (m.CTState == CTEstablishedReply || m.CTState == CTRelatedReply)
		if srcIsA != reply {
			e.flags |= flowAIsInit
		}
		if !reply && pk.Proto == packet.ProtoTCP && pk.TCPFlags&(packet.TCPSyn|packet.TCPAck) == packet.TCPSyn {
			e.rule, e.flags = int32(pk.TCPSeq+1), e.flags|flowISN
		}
	}
	if len(pk.Payload) > 0 && e.pkts < 255 {
		e.pkts++ // the L7 window counts data, not the empty ACKs a client may send at will
	}
	p.evaluate(c, raw, m, d, e, &k, reply, now)
}

func (p *Pipeline) clock() int64 {
	if p.now == nil {
		return monoNow()
	}
	return int64(p.now().Sub(p.start))
}

// evaluate runs the stages and rules for a packet without a cached
// decision. e is nil outside the flow table.
func (p *Pipeline) evaluate(c *Compiled, raw []byte, m *Meta, d *Decision, e *flowEntry, k *flowKey, reply bool, now int64) {
	p.evaluated.Add(1)
	pk := &p.pkt
	if len(p.stages) > 0 && p.runStages(raw, m, d, e, reply) {
		return
	}
	final := e == nil || int(e.pkts) >= c.l7Packets
	if reply {
		// A flow met through a reply (after a Swap, or a lost entry): judge
		// it as its initiator's packet would be, without the reply's
		// payload.
		pk.Src, pk.Dst, pk.SrcPort, pk.DstPort = pk.Dst, pk.Src, pk.DstPort, pk.SrcPort
		pk.Payload = nil
		// The initiator's packets enter where replies leave, and leave
		// where replies enter.
		p.flipMeta = *m
		p.flipMeta.InIf, p.flipMeta.OutIf = m.OutIf, m.InIf
		m = &p.flipMeta
	}
	x := &p.x
	x.reset(c, pk, m, e, p.flows, final)
	rule, t := p.unit(c, x)
	// Every DNS question and HTTP request in the packet is judged; the
	// first that is not accepted decides the packet.
	for (t == triWait || c.actionOf(rule) == ActionAccept) && x.advance() {
		rule, t = p.unit(c, x)
	}
	if e != nil && len(pk.Payload) > 0 && !x.gap {
		e.flags |= flowData
	}
	if x.gap {
		// A segment after a hole in a stream under inspection: passed, it
		// would reach the server before the bytes that decide it.
		p.undecided.Add(1)
		d.Action, d.Rule = ActionDrop, RuleUndecided
		return
	}
	if t == triWait {
		if e != nil && e.flags&flowPerMsg != 0 && (x.cont || len(pk.Payload) == 0) {
			p.continued(c, e, k, d, reply, now)
			return
		}
		if e != nil && e.flags&flowDecided != 0 {
			// A decided QUIC flow's Initial whose ClientHello is not
			// complete (quicRecheck): the flow's decision holds until
			// the name is read, so pieces of a hello never pass a
			// dropped flow as pending.
			p.cached.Add(1)
			d.Cached = true
			p.apply(c, int(e.rule), k, d, false, reply, now)
			return
		}
		p.pending.Add(1)
		d.Action, d.Rule = ActionAccept, RulePending
		return
	}
	perMsg := false
	if e != nil {
		perMsg = p.settle(c, e, x, rule)
	}
	var zero flowKey
	if k == nil {
		k = &zero
	}
	p.apply(c, rule, k, d, true, reply, now)
	if perMsg {
		d.Offload = false // later messages must come here to be judged
	}
}

// unit walks the rules for the packet's current message; a rule that
// cannot be evaluated leaves the decision to Policy.L7Undecided.
func (p *Pipeline) unit(c *Compiled, x *inspect) (int, tri) {
	rule, t := p.rules(c, x)
	if t == triWait && x.undecided {
		return RuleUndecided, triYes
	}
	return rule, t
}

// settle records the decision of rule for the flow and reports whether
// the flow stays under inspection message by message. A flow whose DNS
// messages or HTTP requests were read keeps being judged: its next message
// may name something else. Over TCP a message that is not accepted ends
// the connection's usefulness (its bytes never reach the server, and the
// stream cannot go past them), so that decision is kept for the flow.
func (p *Pipeline) settle(c *Compiled, e *flowEntry, x *inspect, rule int) bool {
	perMsg := x.perMsg && !(x.p.Proto == packet.ProtoTCP && c.actionOf(rule) != ActionAccept)
	switch {
	case perMsg:
		e.rule, e.pkts = int32(rule), 0
		e.flags = e.flags&^flowISN | flowPerMsg
	case !x.perPacket:
		e.rule = int32(rule)
		e.flags = e.flags&^(flowISN|flowPerMsg) | flowDecided
		if e.stream != 0 {
			p.flows.streams.put(p.flows, e.stream)
			e.stream = 0
		}
	}
	if e.hello != 0 { // the flow no longer waits for its ClientHello
		p.flows.hellos.put(e.hello)
		e.hello = 0
	}
	return perMsg
}

// continued decides a packet of a flow under message-by-message inspection
// that begins no new message: a pure ACK, a retransmission, the rest of a
// message or a request body. The decision of the message it continues
// applies. A connection that turned into a tunnel (CONNECT, Upgrade) has
// no messages left to judge: that decision is kept for the flow.
func (p *Pipeline) continued(c *Compiled, e *flowEntry, k *flowKey, d *Decision, reply bool, now int64) {
	if x := &p.x; x.cont {
		e.pkts = 0
		if x.stream != nil && x.stream.phase == phaseTunnel {
			e.flags = e.flags&^flowPerMsg | flowDecided
			p.flows.streams.put(p.flows, e.stream)
			e.stream = 0
		}
	}
	p.apply(c, int(e.rule), k, d, false, reply, now)
	if e.flags&flowDecided == 0 {
		d.Offload = false
	}
}

func (p *Pipeline) runStages(raw []byte, m *Meta, d *Decision, e *flowEntry, reply bool) bool {
	ctx := &p.ctx
	*ctx = Context{Raw: raw, Packet: &p.pkt, Meta: m, Reply: reply}
	if e != nil {
		ctx.FlowPackets = int(e.pkts)
	}
	for _, s := range p.stages {
		if s.Decide(ctx, d) {
			d.Rule, d.Stage = RuleStage, s.Name()
			if d.Action == ActionUnset {
				d.Action = ActionAccept
			}
			return true
		}
	}
	return false
}

// rules finds the first rule matching the packet among the index's
// candidates.
func (p *Pipeline) rules(c *Compiled, x *inspect) (int, tri) {
	if len(p.cand) < c.words {
		p.cand = make(bitmap, c.words) // once per larger policy after a Swap
	}
	if c.l7Any {
		x.fit(c)
	}
	cand := p.cand[:c.words]
	c.idx.candidates(x.p, x.m, cand)
	for i := nextBit(cand, 0); i >= 0; i = nextBit(cand, i+1) {
		r := &c.rules[i]
		if !r.residual {
			return i, triYes
		}
		switch x.residual(r, i) {
		case triYes:
			return i, triYes
		case triWait:
			return RulePending, triWait
		}
		if r.l7 != 0 {
			x.prune(cand)
		}
	}
	return RuleDefault, triYes
}

// apply turns the matched rule into d. first is true for the packet that
// decided the flow (or any packet not served from the cache); reply is true
// for the packets of the flow's responder.
func (p *Pipeline) apply(c *Compiled, rule int, k *flowKey, d *Decision, first, reply bool, now int64) {
	p.applyRule(c, rule, k, d, first, now)
	if reply && d.Action == ActionReject {
		p.rejectReply(d)
	}
}

// rejectReply turns a reject into what the responder's side of a rejected
// flow gets. A reject answers the initiator with a TCP reset that travels
// in the flow's reply direction (an ICMP error is a flow of its own). The
// kernel sends it through the output hook, whatever hook rejected, so when
// steering covers the output hook the reset is queued like any packet, and
// judging it by the flow's reject would discard it: the sender would never
// learn that its connection was refused. So a TCP reset passes: it is the
// kernel's answer, and a reset opens nothing. Anything else the responder
// sends is dropped, as for a dropped flow: it never saw the initiator's
// packets, so nothing it sends is legitimate, and rejecting it would
// answer the responder. Offload is cleared: handing the flow to the kernel
// would accept or drop the initiator's packets instead of rejecting them.
func (p *Pipeline) rejectReply(d *Decision) {
	d.Offload = false
	if p.pkt.Proto == packet.ProtoTCP && p.pkt.TCPFlags&packet.TCPRst != 0 {
		d.Action = ActionAccept
		return
	}
	d.Action = ActionDrop
}

func (p *Pipeline) applyRule(c *Compiled, rule int, k *flowKey, d *Decision, first bool, now int64) {
	if rule == RuleUndecided {
		p.undecided.Add(1)
		d.Rule, d.Action = rule, c.undecided
		return
	}
	if rule < 0 {
		d.Rule = rule
		d.Action = c.def
		return
	}
	r := &c.rules[rule]
	d.Rule, d.Action = rule, r.action
	if r.alert != ActionUnset {
		d.Alert = r.alert
		p.alerts.Add(1)
	}
	if r.setMark {
		d.Mark, d.SetMark = r.mark2, true
	}
	if r.limit != nil && !r.limit.allow(r.limit.keyOf(&p.pkt, k), now) {
		p.limited.Add(1)
		d.Action, d.Limited = r.limit.exceed, true
		return
	}
	d.Offload = r.flow && !c.quicFlow(&p.pkt) // the kernel would pass a later QUIC connection unseen
	if first {
		d.BlockSource = r.blockSource
		if r.log {
			d.Log = p.logAllow(now)
		}
	}
}

// logAllow takes a token from the log rate limit.
func (p *Pipeline) logAllow(now int64) bool {
	if el := now - p.logLast; el > 0 {
		p.logTokens = math.Min(p.logBurst, p.logTokens+float64(el)*p.logRate)
		p.logLast = now
	}
	if p.logTokens >= 1 {
		p.logTokens--
		return true
	}
	p.logDenied.Add(1)
	return false
}

// SeenNames returns the names the last Decide read from its packet: the
// DNS question, the TLS or QUIC server name, the HTTP host; nil for what it
// did not read (a policy without rules on a kind reads none of it). The
// slices are the pipeline's and valid until the next Decide: copy them.
func (p *Pipeline) SeenNames() (dns, sni, host []byte) {
	x := &p.x
	if x.got&needDNS != 0 {
		dns = x.dnsName
	}
	if x.got&needSNI != 0 {
		sni = x.sniName
	}
	if x.got&needHost != 0 {
		host = x.hostName
	}
	return dns, sni, host
}
