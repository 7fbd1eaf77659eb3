package engine

import (
	"net/netip"
	"time"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/verdict"

	"github.com/qguard/qguard/verdict/packet"
)

// queueState is what one queue's goroutine owns: its pipeline, the policy
// generation that pipeline runs, and reusable Meta and Decision values so
// that the handler allocates nothing.
type queueState struct {
	num  uint16
	pipe *verdict.Pipeline
	gen  *policyState
	meta verdict.Meta
	dec  verdict.Decision
	c    counters
	// t holds what this queue counted since the last publish (tally.go):
	// with the queue engine's BatchDone it is published once per receive
	// batch, otherwise after every packet.
	t       tally
	batched bool
	rec     recQueue // record.go
	ev      recEvent
	// lastID is the id of the queue's previous packet: the kernel numbers
	// a queue's packets in order and delivers them in order, so a gap is
	// packets it numbered but could not deliver (socket buffer full).
	lastID uint32
	// sampled counts packets for the latency sample (sampleMask).
	sampled uint64
	// now is the packet's queue.Packet.Received: the pipeline's clock
	// (clock), so the packet path reads the clock once per receive batch.
	now time.Time
}

// clock is the pipeline's Options.Now: the receive time of the packet
// being decided, or the time now for a packet that has none (one made by
// hand, or Decide outside the queue loop).
func (qs *queueState) clock() time.Time {
	if qs.now.IsZero() {
		return time.Now()
	}
	return qs.now
}

// Handle is the per-packet handler given to queue.Queues.Run. It is
// exported so that benchmarks and offline tests can drive the engine with
// hand-made packets; it must be called for a given queue by one goroutine at
// a time, as the queue engine does.
func (e *Engine) Handle(p *queue.Packet) {
	i := int(p.Queue) - int(e.qbase)
	if i < 0 || i >= len(e.qs) {
		// Not one of ours (a misconfigured external rule): leave the verdict
		// unset so the queue's default verdict applies.
		return
	}
	qs := e.qs[i]
	if gap := p.ID - qs.lastID - 1; gap != 0 && gap < 1<<31 {
		qs.c.idGaps.Add(uint64(gap))
	}
	qs.lastID, qs.now = p.ID, p.Received
	// A reload publishes a new generation; the queue's own goroutine swaps
	// its pipeline before the next packet, so each packet is decided by
	// exactly one policy and counted against that policy's rules.
	if g := e.gen.Load(); g != qs.gen {
		qs.pipe.Swap(g.compiled)
		qs.gen = g
	}
	m := &qs.meta
	fillMeta(m, p)
	d := &qs.dec
	c := &qs.c
	// Packets and cached ones are the pipeline's counts (one Decide per
	// packet): a locked add per packet the engine need not repeat.
	t := &qs.t
	t.bytes += uint64(len(p.Payload))
	if qs.sampled++; qs.sampled&sampleMask == 0 {
		t0 := time.Now()
		qs.pipe.Decide(p.Payload, m, d)
		c.observe(time.Since(t0))
	} else {
		qs.pipe.Decide(p.Payload, m, d)
	}
	t.hit(qs.gen.counter(d), i)
	e.apply(p, d, t, qs.gen.flowMarks)
	if d.Log {
		e.logDecision(p.Payload, d, qs.gen)
	}
	if e.rec != nil && !d.Cached && d.Rule != verdict.RulePending {
		e.rec.decision(qs, p, d)
	}
	if d.BlockSource > 0 {
		e.requestBlock(p.Payload, d.BlockSource, c)
	}
	if !qs.batched {
		t.publish(c, i)
	}
}

func fillMeta(m *verdict.Meta, p *queue.Packet) {
	*m = verdict.Meta{
		Queue: p.Queue, Hook: p.Hook, InIf: p.InIf, OutIf: p.OutIf,
		Mark: p.Mark, UID: p.UID, GID: p.GID, CTState: p.CTState,
		HasMark: p.Has&queue.AttrMark != 0,
		HasUID:  p.Has&queue.AttrUID != 0,
		HasGID:  p.Has&queue.AttrGID != 0,
		HasCT:   p.Has&queue.AttrCTInfo != 0,
	}
}

// apply maps a Decision onto the queue verdict (see the mark scheme in
// docs/DESIGN.md). Verdicts that need the kernel's help, a reject or a flow
// decided as a whole, return the packet with NF_REPEAT and one of qguard's
// marks: qguard's chain sees the mark before its queue rule and acts on it.
// Without qguard's rules nobody would act on that mark and the packet would
// come back forever, so rejects degrade to drops and offload to a plain
// verdict.
func (e *Engine) apply(p *queue.Packet, d *verdict.Decision, t *tally, genFlowMarks bool) {
	base := p.Mark
	if d.SetMark {
		base = d.Mark
		t.marked++
	}
	switch d.Alert {
	case verdict.ActionDrop:
		t.alertDrop++
	case verdict.ActionReject:
		t.alertReject++
	}
	marks := e.marks
	flowMarks := e.rejectMarks && genFlowMarks
	switch d.Action {
	case verdict.ActionDrop:
		t.dropped++
		if d.Offload && flowMarks {
			t.offloaded++
			p.SetMark(base&^marks.Mask | marks.DropFlow)
			p.Repeat()
			return
		}
		p.Drop()
		return
	case verdict.ActionReject:
		t.rejected++
		if e.rejectMarks {
			p.SetMark(base&^marks.Mask | marks.Reject)
			p.Repeat()
			return
		}
		p.Drop()
		return
	case verdict.ActionAccept:
		t.accepted++
		if d.Offload && flowMarks {
			t.offloaded++
			p.SetMark(base&^marks.Mask | marks.AcceptFlow)
			p.Repeat()
			return
		}
		if d.SetMark {
			p.SetMark(d.Mark)
		}
		p.Accept()
	default:
		// ActionUnset is a pipeline bug; the queue's default verdict applies.
	}
}

// blockReq asks the block goroutine to put a source in the kernel block set.
type blockReq struct {
	addr netip.Addr
	ttl  time.Duration
}

// requestBlock hands the packet's source to the block goroutine without
// waiting: netlink and bpf(2) calls do not belong on the packet path. When
// the channel is full the request is counted and dropped; the rule still
// drops this packet and will ask again on the source's next flow.
func (e *Engine) requestBlock(raw []byte, ttl time.Duration, c *counters) {
	var vp packet.Packet
	if !packet.Decode(raw, &vp) || !vp.Src.IsValid() {
		return
	}
	c.blocked.Add(1)
	select {
	case e.blockCh <- blockReq{addr: vp.Src, ttl: ttl}:
		e.blockQueued.Add(1)
	default:
		e.blockDropped.Add(1)
	}
}
