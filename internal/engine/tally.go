package engine

import "sync/atomic"

// tally is what one queue counted since its last publish, in plain fields
// only that queue's goroutine touches. A locked add per counter and packet
// cost tens of nanoseconds a packet on the virtual machines qguard was
// measured on; published once per receive batch (queue.Config.BatchDone),
// the counters cost a few locked adds a batch. Published before the batch's
// verdicts are sent, a count lags its packets by at most the batch being
// handled.
type tally struct {
	bytes, accepted, dropped, rejected uint64
	offloaded, marked                  uint64
	alertDrop, alertReject             uint64
	// Rule hits: consecutive packets mostly hit the same rule (a flow's,
	// the default's), so one pending count for the last rule hit.
	hitRC *ruleCounter
	hitN  uint64
}

// hit counts a packet decided by rc (nil: no counter).
func (t *tally) hit(rc *ruleCounter, q int) {
	if rc != t.hitRC {
		t.flushHit(q)
		t.hitRC = rc
	}
	t.hitN++
}

func (t *tally) flushHit(q int) {
	if t.hitN > 0 && t.hitRC != nil {
		t.hitRC.perQueue[q].n.Add(t.hitN)
	}
	t.hitN = 0
}

// publish adds the tally to queue q's counters and clears it.
func (t *tally) publish(c *counters, q int) {
	addTo(&c.bytes, &t.bytes)
	addTo(&c.accepted, &t.accepted)
	addTo(&c.dropped, &t.dropped)
	addTo(&c.rejected, &t.rejected)
	addTo(&c.offloaded, &t.offloaded)
	addTo(&c.marked, &t.marked)
	addTo(&c.alertDrop, &t.alertDrop)
	addTo(&c.alertReject, &t.alertReject)
	t.flushHit(q)
}

func addTo(c *atomic.Uint64, n *uint64) {
	if *n != 0 {
		c.Add(*n)
		*n = 0
	}
}

// batchDone is the queues' queue.Config.BatchDone: it publishes the
// queue's tally.
func (e *Engine) batchDone(num uint16) {
	if i := int(num) - int(e.qbase); i >= 0 && i < len(e.qs) {
		e.qs[i].t.publish(&e.qs[i].c, i)
	}
}
