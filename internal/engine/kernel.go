package engine

import "github.com/qguard/qguard/queue"

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
		out[i].FlowEntries = uint64(ps.Flows.Size)
		out[i].FlowEvictions = ps.Flows.Evictions
		logDenied += ps.LogDenied
	}
	return logDenied
}
