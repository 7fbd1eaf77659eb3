package engine

import (
	"testing"

	"github.com/qguard/qguard/queue"
)

// TestKernelExtWraps: the kernel's 32-bit id_sequence and queue_dropped
// are widened across wrap-around.
func TestKernelExtWraps(t *testing.T) {
	var k kernelExt
	k.update(queue.KernelStats{IDSequence: 1<<32 - 10, QueueDropped: 1<<32 - 1})
	k.update(queue.KernelStats{IDSequence: 5, QueueDropped: 3})
	if k.id != 1<<32+5 || k.qd != 1<<32+3 {
		t.Fatalf("id %d qd %d", k.id, k.qd)
	}
	k.update(queue.KernelStats{IDSequence: 5, QueueDropped: 3})
	if k.id != 1<<32+5 || k.qd != 1<<32+3 {
		t.Fatalf("no change moved the counters: id %d qd %d", k.id, k.qd)
	}
}

// TestHandleCountsIDGaps: ids the kernel numbered but never delivered are
// counted; the first id 1 and a wrap through 0 are no gap, and a jump
// backwards (not the kernel's order) is not one either.
func TestHandleCountsIDGaps(t *testing.T) {
	e := offline(t, testPolicy(), true)
	for _, id := range []uint32{1, 2, 5, 6, 1<<32 - 2, 1<<32 - 1, 0, 1, 3, 2} {
		p := queue.Packet{Queue: 0, ID: id, Payload: udp4("198.18.1.2", "198.18.2.2", 4000, 80, "x")}
		e.Handle(&p)
	}
	if g := e.qs[0].c.idGaps.Load(); g != 3 {
		t.Fatalf("gaps %d, want 3", g)
	}
}
