package engine

import (
	"testing"
	"time"

	"github.com/qguard/qguard/queue"
)

// With the queue engine's BatchDone a queue's counters and rule hits are
// published once per receive batch (hits also when the rule changes):
// everything shows after it, per queue, rule by rule, nothing twice.
func TestTallyPublishedPerBatch(t *testing.T) {
	e := offline(t, testPolicy(), true)
	for _, qs := range e.qs {
		qs.batched = true
	}
	pkts := [][]byte{
		udp4("198.18.1.2", "198.18.2.2", 1000, 9, "x"),  // drop-9
		udp4("198.18.1.2", "198.18.2.2", 1001, 9, "x"),  // drop-9
		udp4("198.18.1.2", "198.18.2.2", 1002, 80, "x"), // default accept
		udp4("198.18.1.2", "198.18.2.2", 1003, 9, "x"),  // drop-9 again after another rule
		udp4("198.18.1.2", "198.18.2.2", 1004, 12, "x"), // mark-12
	}
	var bytes uint64
	for _, b := range pkts {
		p := queue.Packet{Payload: b}
		e.Handle(&p)
		bytes += uint64(len(b))
	}
	// A rule's pending hits go out when another rule decides; the last
	// one's wait for the batch like the counters.
	if q := e.Stats().Queues[0]; q.Bytes != 0 || q.Dropped != 0 || q.Accepted != 0 || e.Hits("mark-12") != 0 {
		t.Fatalf("published before the batch was done: %+v, mark-12 %d", q, e.Hits("mark-12"))
	}
	e.batchDone(0)
	q := e.Stats().Queues[0]
	if q.Packets != 5 || q.Bytes != bytes || q.Dropped != 3 || q.Accepted != 2 || q.Marked != 1 {
		t.Errorf("after the batch: %+v (want 5 packets, %d bytes, 3 dropped, 2 accepted, 1 marked)", q, bytes)
	}
	if d, def, m := e.Hits("drop-9"), e.Hits(CounterDefault), e.Hits("mark-12"); d != 3 || def != 1 || m != 1 {
		t.Errorf("hits drop-9 %d, default %d, mark-12 %d; want 3, 1, 1", d, def, m)
	}
	if q := e.Stats().Queues[1]; q.Bytes != 0 || q.Accepted != 0 {
		t.Errorf("queue 1 counted queue 0's packets: %+v", q)
	}
	e.batchDone(0) // nothing new: nothing counted twice
	if q2 := e.Stats().Queues[0]; q2.Bytes != q.Bytes || e.Hits("drop-9") != 3 {
		t.Errorf("a second publish changed the counts: %+v", q2)
	}
}

func TestTallyAllocs(t *testing.T) {
	e := offline(t, testPolicy(), true)
	e.qs[0].batched = true
	pkts := [][]byte{udp4("198.18.1.2", "198.18.2.2", 1000, 80, "hello"), udp4("198.18.1.2", "198.18.2.2", 1001, 9, "hello")}
	var p queue.Packet
	now := time.Now()
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		p = queue.Packet{Payload: pkts[i%len(pkts)], Received: now}
		e.Handle(&p)
		if i%4 == 3 {
			e.batchDone(0)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("Handle and batchDone allocate %v times per packet", allocs)
	}
}

// BenchmarkHandleBatch8 is BenchmarkHandle as the queue engine runs it:
// counters published once per receive batch, here of 8 packets.
func BenchmarkHandleBatch8(b *testing.B) {
	e := offline(b, testPolicy(), true)
	e.qs[0].batched = true
	pkt := udp4("198.18.1.2", "198.18.2.2", 1000, 80, "hello")
	var p queue.Packet
	now := time.Now()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		p = queue.Packet{Payload: pkt, Received: now}
		e.Handle(&p)
		if i++; i%8 == 0 {
			e.batchDone(0)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
