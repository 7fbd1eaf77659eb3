package engine

import (
	"context"
	"log/slog"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/verdict"

	"github.com/qguard/qguard/verdict/packet"
)

// Stats returns a snapshot of every counter. It may be called from any
// goroutine; reads are atomic per counter (not across counters).
func (e *Engine) Stats() Stats {
	s := Stats{
		Started:        e.started,
		Queues:         make([]QueueStats, len(e.qs)),
		RulesInstalled: e.rules != nil,
		Reloads:        e.reloads.Load(),
		Failures:       e.reloadFailures.Load(),
		BlockQueued:    e.blockQueued.Load(),
		BlockDropped:   e.blockDropped.Load(),
		BlockErrors:    e.blockError.Load(),
	}
	for i, qs := range e.qs {
		s.Queues[i] = qs.c.snapshot(qs.num)
	}
	e.guardStats(&s)
	s.LogSuppressed = e.addPipelineStats(s.Queues)
	if e.rec != nil {
		rs := e.rec.stats()
		s.Record = &rs
	}
	e.addKernelStats(s.Queues)
	s.Names = e.nameStats()
	hits := e.RuleHits()
	n := len(e.gen.Load().rules)
	s.Rules, s.Default = hits[:n], hits[n]
	for _, h := range hits[n+1:] {
		if h.Hits > 0 {
			s.Rules = append(s.Rules, h)
		}
	}
	if e.xdp != nil {
		for _, a := range e.xdp.Attachments() {
			s.XDP = append(s.XDP, a.String())
		}
		xs := e.xdp.Stats()
		s.XDPDroppedSource, s.XDPDroppedFlow = xs.DroppedSource, xs.DroppedFlow
	}
	e.reloadMu.Lock()
	s.LastReload, s.LastReloadError = e.lastReload, e.lastReloadErr
	e.reloadMu.Unlock()
	return s
}

func (e *Engine) addKernelStats(out []QueueStats) {
	if e.q == nil {
		return
	}
	for _, ks := range e.q.Stats() {
		i := int(ks.Queue) - int(e.qbase)
		if i < 0 || i >= len(out) {
			continue
		}
		kernelInto(&out[i], ks, e.bypass.failOpen)
	}
}

// kernelInto copies the kernel's view of a queue (its line in
// /proc/net/netfilter/nfnetlink_queue) and, fail-closed, the engine's
// receive overruns into out. With fail-open an overrun is a packet the
// kernel accepted, not dropped: it counts as bypassed (bypass.go).
func kernelInto(out *QueueStats, ks queue.Stats, failOpen bool) {
	if ks.Kernel.Valid {
		out.KernelQueueDropped = uint64(ks.Kernel.QueueDropped)
		out.KernelUserDropped = uint64(ks.Kernel.UserDropped)
		out.KernelPending = uint64(ks.Kernel.QueueTotal)
	}
	if !failOpen && ks.ENOBUFS > out.KernelUserDropped {
		// Without NETLINK_NO_ENOBUFS the socket reports overruns; with it
		// only the kernel's user_dropped counter knows.
		out.KernelUserDropped = ks.ENOBUFS
	}
}

// addPipelineStats adds each queue pipeline's flow table figures and sums
// the decision log lines its rate limit suppressed.
func (e *Engine) addPipelineStats(out []QueueStats) uint64 {
	var logDenied uint64
	for i, qs := range e.qs {
		ps := qs.pipe.Stats()
		out[i].Packets, out[i].Cached = ps.Packets, ps.Cached
		out[i].FlowEntries = uint64(ps.Flows.Size)
		out[i].FlowEvictions = ps.Flows.Evictions
		logDenied += ps.LogDenied
	}
	return logDenied
}

// logDecision prints one rule's log line. The pipeline only sets
// Decision.Log when its log rate limit had room, so this formatting (which
// allocates) runs a bounded number of times per second.
func (e *Engine) logDecision(raw []byte, d *verdict.Decision, g *policyState) {
	var p packet.Packet
	packet.Decode(raw, &p)
	name := ""
	if d.Rule >= 0 && d.Rule < len(g.policy.Rules) {
		name = g.policy.Rules[d.Rule].Name
	}
	e.log.LogAttrs(context.Background(), slog.LevelInfo, "decision",
		slog.String("rule", name), slog.String("action", d.Action.String()),
		slog.Int("proto", int(p.Proto)),
		slog.String("src", p.Src.String()), slog.Int("sport", int(p.SrcPort)),
		slog.String("dst", p.Dst.String()), slog.Int("dport", int(p.DstPort)),
		slog.Bool("cached", d.Cached), slog.Bool("offload", d.Offload),
		slog.String("alert", d.Alert.String()))
}
