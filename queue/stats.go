package queue

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"
)

// Stats are one queue's counters since Open.
type Stats struct {
	Queue    uint16
	Received uint64 // packet messages read

	// Verdicts by kind, including defaults.
	Accepted, Dropped, Repeated, Queued uint64
	// Defaulted counts packets whose handler set no verdict.
	Defaulted uint64
	// Panics counts handler panics (the packet got DefaultVerdict).
	Panics uint64
	// DecodeErrors counts malformed packet messages; those with a readable
	// id got DefaultVerdict, the rest none (Unverdictable: such a packet
	// stays queued until a later batch verdict, which covers every older
	// id, or the unbind). The kernel puts the id first, so only a
	// message corrupted in transit can lack it.
	DecodeErrors, Unverdictable uint64
	// Truncated counts messages cut short by the receive buffer.
	Truncated uint64
	// PayloadErrors counts replaced payloads too large to send (dropped).
	PayloadErrors uint64

	VerdictMsgs uint64 // verdict messages sent (a batch counts once)
	Batches     uint64 // NFQNL_MSG_VERDICT_BATCH messages among them
	RecvCalls   uint64 // recvmmsg calls that returned packets
	SendCalls   uint64 // sendmsg calls
	Syscalls    uint64 // every receive and send call, idle timeouts too
	ENOBUFS     uint64 // receive buffer overruns reported by the kernel
	KernelErrs  uint64 // NLMSG_ERROR replies to verdicts
	RecvErrors  uint64 // other failed receives
	SendErrors  uint64 // failed sends (their verdicts are lost)

	// Kernel is the queue's line in /proc/net/netfilter/nfnetlink_queue,
	// read in the socket's network namespace.
	Kernel KernelStats
}

// KernelStats is one line of /proc/net/netfilter/nfnetlink_queue.
type KernelStats struct {
	Valid        bool // false when the line was not found
	Queue        uint16
	PortID       uint32
	QueueTotal   uint32 // packets waiting for a verdict now
	CopyMode     uint8
	CopyRange    uint32
	QueueDropped uint32 // dropped because the queue was full
	UserDropped  uint32 // dropped because the socket buffer was full
	IDSequence   uint32 // last packet id handed out
}

// counters is the loop's private, non-atomic copy of Stats; it publishes to
// a statsCell once per batch so the hot path pays no atomic per packet.
type counters struct {
	received, accepted, dropped, repeated, queued, defaulted, panics uint64
	decodeErrors, unverdictable, truncated, payloadErrors            uint64
	verdictMsgs, batches, recvCalls, sendCalls, syscalls             uint64
	enobufs, kernelErrs, recvErrors, sendErrors                      uint64
}

const nCounters = 20

type statsCell [nCounters]atomic.Uint64

func (c *counters) publish(s *statsCell) {
	v := [nCounters]uint64{c.received, c.accepted, c.dropped, c.repeated, c.queued, c.defaulted,
		c.panics, c.decodeErrors, c.unverdictable, c.truncated, c.payloadErrors, c.verdictMsgs,
		c.batches, c.recvCalls, c.sendCalls, c.syscalls, c.enobufs, c.kernelErrs, c.recvErrors, c.sendErrors}
	for i := range v {
		s[i].Store(v[i])
	}
}

func (s *statsCell) load(queue uint16) Stats {
	var v [nCounters]uint64
	for i := range v {
		v[i] = s[i].Load()
	}
	return Stats{Queue: queue, Received: v[0], Accepted: v[1], Dropped: v[2], Repeated: v[3],
		Queued: v[4], Defaulted: v[5], Panics: v[6], DecodeErrors: v[7], Unverdictable: v[8],
		Truncated: v[9], PayloadErrors: v[10], VerdictMsgs: v[11], Batches: v[12], RecvCalls: v[13],
		SendCalls: v[14], Syscalls: v[15], ENOBUFS: v[16], KernelErrs: v[17], RecvErrors: v[18],
		SendErrors: v[19]}
}

// ParseProcQueues parses /proc/net/netfilter/nfnetlink_queue, whose lines
// the kernel prints as
//
//	"%5u %6u %5u %1u %5u %5u %5u %8u %2d\n" queue_number, peer_portid,
//	queue_total, copy_mode, copy_range, queue_dropped, queue_user_dropped,
//	id_sequence, 1
//
// (net/netfilter/nfnetlink_queue.c, seq_show).
func ParseProcQueues(b []byte) ([]KernelStats, error) {
	var out []KernelStats
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return out, fmt.Errorf("parse nfnetlink_queue line %d: %d fields, want 9", line, len(f))
		}
		var v [8]uint64
		for i := range v {
			bits := 32
			if i == 0 {
				bits = 16
			}
			n, err := strconv.ParseUint(string(f[i]), 10, bits)
			if err != nil {
				return out, fmt.Errorf("parse nfnetlink_queue line %d field %d: %w", line, i+1, err)
			}
			v[i] = n
		}
		out = append(out, KernelStats{Valid: true, Queue: uint16(v[0]), PortID: uint32(v[1]),
			QueueTotal: uint32(v[2]), CopyMode: uint8(v[3]), CopyRange: uint32(v[4]),
			QueueDropped: uint32(v[5]), UserDropped: uint32(v[6]), IDSequence: uint32(v[7])})
	}
	return out, sc.Err()
}
