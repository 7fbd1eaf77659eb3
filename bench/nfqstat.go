package bench

import "github.com/qguard/qguard/queue"

// nfqTotals sums the counters of queues [first, first+count) in the
// kernel's view of them (queue.ParseProcQueues of
// /proc/net/netfilter/nfnetlink_queue).
func nfqTotals(st []queue.KernelStats, first uint16, count int) (dropped, userDropped, queued uint64) {
	for _, s := range st {
		if int(s.Queue) >= int(first) && int(s.Queue) < int(first)+count {
			dropped += uint64(s.QueueDropped)
			userDropped += uint64(s.UserDropped)
			queued += uint64(s.IDSequence)
		}
	}
	return
}
