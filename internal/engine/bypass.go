package engine

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
)

// Bypass accounting. With queue.fail_open the kernel accepts a packet it
// cannot queue instead of dropping it (net/netfilter/nfnetlink_queue.c,
// __nfqnl_enqueue_packet), on two paths, neither of which bumps a counter
// of its own:
//
//   - queue full (queue_total >= max_len): before the packet gets an id, so
//     it hit the steering rule's counter but not id_sequence;
//   - socket buffer full (nfnetlink_unicast fails): after it got an id, so
//     the id never reaches qguard: a gap in the ids Handle sees.
//
// Without fail_open the same paths count queue_dropped and (id assigned)
// user_dropped, and drop. So, over a period in which the steering rules
// stay the same:
//
//	fail-open:   bypassed = Δsteered − Δid_sequence + Δgaps
//	fail-closed: bypassed = Δsteered − Δid_sequence − Δqueue_dropped
//
// (fail-closed can still bypass: no handler bound and rules.bypass.)
// Skew between reads must never invent bypass: in every sample the queue
// side is read before and after the rule counters; the estimate uses the
// later read (packets steered meanwhile count as queued, not bypassed),
// the baseline of a period the earlier one (packets steered meanwhile
// count as before the period). A reload replaces the rules and their
// counters: that starts a new period, and the total carries over.

// bypassEvery is how often the engine samples; bypassLogEvery bounds the
// WARN lines.
const (
	bypassEvery    = time.Second
	bypassLogEvery = 10 * time.Second
)

type bypassMeter struct {
	mu       sync.Mutex
	failOpen bool
	// ext widens the kernel's 32-bit counters per queue.
	ext map[uint16]*kernelExt
	// The period's baseline: which steering rules, their packets, the
	// queue side and the gaps.
	base    bool
	rules   map[string]bool
	r0, d0  uint64
	g0      uint64
	carried uint64 // total of earlier periods
	// The queue side at the last full sample, and whether every queue was
	// empty then: while both hold, nothing can have been bypassed (idle).
	lastD     uint64
	lastEmpty bool
	allRead   bool   // the last queue-side read found every queue's counters
	total     uint64 // reported: monotonic
	logged    uint64 // total at the last WARN
	lastWarn  time.Time
}

type kernelExt struct {
	rawID, rawQD uint32
	id, qd       uint64
	seen         bool
	// From the last read: packets waiting for a verdict, messages the
	// queue engine could not decode (they never reach Handle), and the
	// most failed deliveries seen so far (a lower bound, see failures).
	pending, undecoded, failed uint64
}

func (k *kernelExt) update(ks queue.KernelStats) {
	if !k.seen {
		k.rawID, k.rawQD, k.id, k.qd, k.seen = ks.IDSequence, ks.QueueDropped, uint64(ks.IDSequence), uint64(ks.QueueDropped), true
		return
	}
	k.id += uint64(ks.IDSequence - k.rawID)
	k.qd += uint64(ks.QueueDropped - k.rawQD)
	k.rawID, k.rawQD = ks.IDSequence, ks.QueueDropped
}

// queueSide reads id_sequence (+ queue_dropped when fail-closed) summed over
// the engine's queues. Called with mu held.
func (b *bypassMeter) queueSide(e *Engine) uint64 {
	var d uint64
	b.allRead = true
	for _, ks := range e.q.Stats() {
		if !ks.Kernel.Valid {
			b.allRead = false
			continue
		}
		k := b.ext[ks.Queue]
		if k == nil {
			k = &kernelExt{}
			b.ext[ks.Queue] = k
		}
		k.update(ks.Kernel)
		k.pending, k.undecoded = uint64(ks.Kernel.QueueTotal), ks.DecodeErrors
		d += k.id
		if !b.failOpen {
			d += k.qd
		}
	}
	return d
}

// sample updates the total; it returns the bypassed packets since the
// last WARN when one is due.
func (e *Engine) sampleBypass() (since uint64, warn bool) {
	b := &e.bypass
	if e.rules == nil || e.q == nil {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ext == nil {
		b.ext = map[uint16]*kernelExt{}
	}
	before := b.queueSide(e)
	if b.idle(before) {
		return 0, false
	}
	cs, err := e.rules.Counters()
	if err != nil {
		b.base = false // table gone: the guard says so; start over
		return 0, false
	}
	after := b.queueSide(e)
	var gaps uint64
	if b.failOpen {
		gaps = b.failures(e)
	}
	b.lastD, b.lastEmpty = after, b.empty()
	ids := map[string]bool{}
	var r uint64
	for _, c := range cs {
		if rules.Queues(c.Rule) {
			ids[strconv.FormatUint(c.Handle, 10)] = true
			r += c.Packets
		}
	}
	if !b.base || !sameKeys(ids, b.rules) {
		b.carried = b.total
		b.base, b.rules, b.r0, b.d0, b.g0 = true, ids, r, before, gaps
		return 0, false
	}
	if est := int64(r-b.r0) - int64(after-b.d0) + int64(gaps-b.g0); est > 0 && b.carried+uint64(est) > b.total {
		b.total = b.carried + uint64(est)
	}
	if b.total > b.logged && time.Since(b.lastWarn) >= bypassLogEvery {
		since = b.total - b.logged
		b.logged, b.lastWarn = b.total, time.Now()
		return since, true
	}
	return 0, false
}

// idle reports whether no queue numbered a packet since the last full
// sample (d, the queue side now, is what it was then) and every queue was
// empty then and is now. Called with mu held, after queueSide. A packet
// the kernel lets through unqueued needs a full queue, whose packets were
// numbered, or a failed delivery of a numbered packet; and every packet a
// queue rule counts is numbered or let through. So while a queue stays
// idle the rule counters have not moved, and the dump of every rule that
// reading them takes (a daemon in kernel-first mode queues next to
// nothing) is skipped. A period's change of rules is noticed at the next
// full sample, as before.
func (b *bypassMeter) idle(d uint64) bool {
	return b.base && b.allRead && b.lastEmpty && d == b.lastD && b.empty()
}

// empty reports whether no queue held a packet at the last queue-side
// read.
func (b *bypassMeter) empty() bool {
	for _, k := range b.ext {
		if k.pending != 0 {
			return false
		}
	}
	return true
}

// failures is a lower bound of the packets the kernel numbered but could
// not deliver, summed over the queues, from the latest queue-side read
// (called right after it, with mu held). Two bounds, the larger holds:
//
//   - the gaps in the ids Handle saw (exact below the last id seen);
//   - numbered − handled − pending: every delivered packet is pending in
//     the kernel or has its verdict, and no verdict comes before Handle
//     (handled is read after the kernel side, so it can only be larger).
//     This one also counts failures after the last packet delivered.
//
// The running maximum is kept: the number of failures never shrinks.
func (b *bypassMeter) failures(e *Engine) uint64 {
	var sum uint64
	for _, qs := range e.qs {
		k := b.ext[qs.num]
		if k == nil {
			continue
		}
		f := qs.c.idGaps.Load()
		handled := qs.pipe.Stats().Packets + k.undecoded
		if lb := int64(k.id) - int64(handled) - int64(k.pending); lb > int64(f) {
			f = uint64(lb)
		}
		if f > k.failed {
			k.failed = f
		}
		sum += k.failed
	}
	return sum
}

func (e *Engine) bypassed() uint64 {
	e.bypass.mu.Lock()
	defer e.bypass.mu.Unlock()
	return e.bypass.total
}

// bypassLoop samples until stop is closed.
func (e *Engine) bypassLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(bypassEvery)
	defer t.Stop()
	e.sampleBypass()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if n, warn := e.sampleBypass(); warn {
			what := "queue or socket buffer full, queue.fail_open: accepted"
			if !e.bypass.failOpen {
				what = "no handler bound, rules.bypass: accepted"
			}
			e.log.LogAttrs(context.Background(), slog.LevelWarn, "kernel let packets through without queueing them",
				slog.Uint64("bypassed", n), slog.Uint64("total", e.bypassed()), slog.String("why", what))
		}
	}
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
