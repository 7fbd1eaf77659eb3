package rules

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/queue"
)

// This file binds queues with qguard's queue package, a small stand-in for
// the daemon: it counts what the rules queue and answers with verdicts and
// marks the way the daemon does.

// flowKey identifies traffic in the test handler: protocol and the server
// side port (destination of the client's packets).
type flowKey struct {
	proto uint8
	port  uint16
}

// answer is the test handler's decision for one packet.
type answer struct {
	verdict queue.Verdict
	mark    uint32 // with Repeat
}

var accept = answer{verdict: queue.Accept}

func repeat(mark uint32) answer { return answer{verdict: queue.Repeat, mark: mark} }

// testQueue counts queued packets per flowKey and per queue number.
type testQueue struct {
	mu      sync.Mutex
	counts  map[flowKey]int
	byQueue map[uint16]int
	total   int
	policy  func(k flowKey) answer
	// onPayload sees every queued packet.
	onPayload func(b []byte)
}

func (q *testQueue) count(k flowKey) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.counts[k]
}

func (q *testQueue) all() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

func (q *testQueue) setOnPayload(fn func(b []byte)) {
	q.mu.Lock()
	q.onPayload = fn
	q.mu.Unlock()
}

func (q *testQueue) handle(p *queue.Packet) {
	k := parseFlow(p.Payload)
	q.mu.Lock()
	if q.onPayload != nil {
		q.onPayload(p.Payload)
	}
	q.counts[k]++
	q.byQueue[p.Queue]++
	q.total++
	ans := q.policy(k)
	q.mu.Unlock()
	switch ans.verdict {
	case queue.Repeat:
		p.Repeat()
		p.SetMark(ans.mark)
	case queue.Drop:
		p.Drop()
	default:
		p.Accept()
	}
}

// bindQueues binds queues num..num+count-1 in ns until the test ends.
func bindQueues(t testing.TB, ns topo.NS, num, count uint16, policy func(k flowKey) answer) *testQueue {
	t.Helper()
	var qs *queue.Queues
	err := ns.Do(func() (err error) {
		qs, err = queue.Open(&queue.Config{Num: num, Count: count, CopyRange: 128, MaxLen: 4096})
		return err
	})
	if err != nil {
		t.Fatalf("bind queues %d+%d: %v", num, count, err)
	}
	q := &testQueue{counts: map[flowKey]int{}, byQueue: map[uint16]int{}, policy: policy}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- qs.Run(ctx, q.handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("queue run: %v", err)
		}
	})
	return q
}

func bindQueue(t testing.TB, ns topo.NS, num uint16, policy func(k flowKey) answer) *testQueue {
	return bindQueues(t, ns, num, 1, policy)
}

// parseFlow reads the protocol and destination port of an IPv4 or IPv6
// packet; the port is 0 for protocols without ports or short packets.
func parseFlow(b []byte) flowKey {
	if len(b) < 1 {
		return flowKey{}
	}
	var proto uint8
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return flowKey{}
		}
		proto, l4 = b[9], b[int(b[0]&0xf)*4:]
	case 6:
		if len(b) < 40 {
			return flowKey{}
		}
		proto, l4 = b[6], b[40:]
	}
	k := flowKey{proto: proto}
	if (proto == 6 || proto == 17) && len(l4) >= 4 {
		k.port = binary.BigEndian.Uint16(l4[2:])
	}
	return k
}
