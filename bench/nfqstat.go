package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// NFQStat is one line of /proc/net/netfilter/nfnetlink_queue, the kernel's
// own view of a bound queue (net/netfilter/nfnetlink_queue.c, seq_show).
type NFQStat struct {
	Queue       uint16
	PortID      uint32
	Total       uint64 // packets waiting for a verdict now
	CopyMode    uint8
	CopyRange   uint32
	Dropped     uint64 // queue_dropped: queue full (or no listener with bypass off)
	UserDropped uint64 // user_dropped: netlink socket full
	IDSequence  uint64 // last packet id handed out: packets queued so far
}

// ParseNFQStats parses the contents of /proc/net/netfilter/nfnetlink_queue.
func ParseNFQStats(s string) ([]NFQStat, error) {
	var out []NFQStat
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("parse nfnetlink_queue line %d: %d fields, want at least 8", i+1, len(f))
		}
		var v [8]uint64
		for j := range v {
			n, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse nfnetlink_queue line %d field %d: %w", i+1, j+1, err)
			}
			v[j] = n
		}
		if v[0] > 0xffff {
			return nil, fmt.Errorf("parse nfnetlink_queue line %d: queue number %d out of range", i+1, v[0])
		}
		out = append(out, NFQStat{Queue: uint16(v[0]), PortID: uint32(v[1]), Total: v[2], CopyMode: uint8(v[3]),
			CopyRange: uint32(v[4]), Dropped: v[5], UserDropped: v[6], IDSequence: v[7]})
	}
	return out, nil
}

// nfqTotals sums the counters of queues [first, first+count).
func nfqTotals(st []NFQStat, first uint16, count int) (dropped, userDropped, queued uint64) {
	for _, s := range st {
		if int(s.Queue) >= int(first) && int(s.Queue) < int(first)+count {
			dropped += s.Dropped
			userDropped += s.UserDropped
			queued += s.IDSequence
		}
	}
	return
}
