package rules

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// NFQUEUE target flags, from linux/netfilter/xt_NFQUEUE.h.
const (
	nfqFlagBypass    = 0x01 // NFQ_FLAG_BYPASS
	nfqFlagCPUFanout = 0x02 // NFQ_FLAG_CPU_FANOUT
)

// nfqInfoLen is sizeof(struct xt_NFQ_info_v3) rounded up to XT_ALIGN (8).
//
//	struct xt_NFQ_info_v3 {   // linux/netfilter/xt_NFQUEUE.h, host byte order
//	    __u16 queuenum;       // bytes 0-1
//	    __u16 queues_total;   // bytes 2-3
//	    __u16 flags;          // bytes 4-5
//	};                        // bytes 6-7: padding to XT_ALIGN
//
// iptables-nft -j NFQUEUE --queue-num 3 --queue-bypass installs exactly
// 03 00 01 00 01 00 00 00 on a little-endian machine.
const nfqInfoLen = 8

// nfqueueInfo encodes xt_NFQ_info_v3 for the NFQUEUE target, revision 3.
func nfqueueInfo(num, total uint16, bypass, fanout bool) []byte {
	b := make([]byte, nfqInfoLen)
	binary.NativeEndian.PutUint16(b[0:], num)
	binary.NativeEndian.PutUint16(b[2:], total)
	var flags uint16
	if bypass {
		flags |= nfqFlagBypass
	}
	if fanout {
		flags |= nfqFlagCPUFanout
	}
	binary.NativeEndian.PutUint16(b[4:], flags)
	return b
}

// decodeNFQueueInfo reverses nfqueueInfo for Show.
func decodeNFQueueInfo(b []byte) (num, total uint16, bypass, fanout bool, err error) {
	if len(b) < 6 {
		return 0, 0, false, false, fmt.Errorf("decode NFQUEUE info: %d bytes, want at least 6", len(b))
	}
	flags := binary.NativeEndian.Uint16(b[4:])
	return binary.NativeEndian.Uint16(b[0:]), binary.NativeEndian.Uint16(b[2:]),
		flags&nfqFlagBypass != 0, flags&nfqFlagCPUFanout != 0, nil
}

// queueExpr returns the expression that queues a packet.
func queueExpr(impl QueueImpl, num, total uint16, bypass, fanout bool) expr.Any {
	if impl == QueueNative {
		var f expr.QueueFlag
		if bypass {
			f |= expr.QueueFlagBypass
		}
		if fanout {
			f |= expr.QueueFlagFanout
		}
		return &expr.Queue{Num: num, Total: total, Flag: f}
	}
	info := xt.Unknown(nfqueueInfo(num, total, bypass, fanout))
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

// QueueExpr is the expression qguard's rules queue with: the native queue
// expression, or the xtables NFQUEUE target (revision 3) through the compat
// expression, as impl says (Capabilities.Best). Packets go to queues
// num..num+total-1, balanced by flow hash unless fanout (by CPU); bypass
// accepts them when no program listens. For callers that build their own
// steering (the benchmark harness).
func QueueExpr(impl QueueImpl, num, total uint16, bypass, fanout bool) expr.Any {
	return queueExpr(impl, num, total, bypass, fanout)
}
