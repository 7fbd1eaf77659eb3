package rules

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/florianl/go-nfqueue/v2"
)

// This file binds a queue with go-nfqueue, a test-only stand-in for a
// handler: it counts what the rules queue and answers with verdicts and
// marks the way qguard's daemon does.

// flowKey identifies traffic in the test handler: protocol and the server
// side port (destination of the client's packets).
type flowKey struct {
	proto uint8
	port  uint16
}

// answer is the test handler's decision for one packet.
type answer struct {
	verdict int
	mark    uint32 // with NF_REPEAT
}

var (
	accept = answer{verdict: nfqueue.NfAccept}
	drop   = answer{verdict: nfqueue.NfDrop}
)

func repeat(mark uint32) answer { return answer{verdict: nfqueue.NfRepeat, mark: mark} }

// testQueue counts queued packets per flowKey.
type testQueue struct {
	mu     sync.Mutex
	counts map[flowKey]int
	total  int
	policy func(k flowKey) answer
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

// bindQueue binds queue num in the namespace nsFd until the test ends.
func bindQueue(t *testing.T, nsFd int, num uint16, policy func(k flowKey) answer) *testQueue {
	t.Helper()
	nf, err := nfqueue.Open(&nfqueue.Config{
		NetNS: nsFd, NfQueue: num, MaxPacketLen: 128, MaxQueueLen: 4096,
		Copymode: nfqueue.NfQnlCopyPacket,
	})
	if err != nil {
		t.Fatalf("bind queue %d: %v", num, err)
	}
	q := &testQueue{counts: map[flowKey]int{}, policy: policy}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = nf.Close() })
	err = nf.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		if a.PacketID == nil || a.Payload == nil {
			return 0
		}
		k := parseFlow(*a.Payload)
		q.mu.Lock()
		if q.onPayload != nil {
			q.onPayload(*a.Payload)
		}
		q.counts[k]++
		q.total++
		ans := q.policy(k)
		q.mu.Unlock()
		if ans.verdict == nfqueue.NfRepeat {
			_ = nf.SetVerdictWithMark(*a.PacketID, ans.verdict, int(ans.mark))
		} else {
			_ = nf.SetVerdict(*a.PacketID, ans.verdict)
		}
		return 0
	}, func(err error) int {
		// ENOENT: the kernel dropped the packet before our verdict (its
		// chain was deleted by a reload that moved the hook).
		if ctx.Err() == nil && !errors.Is(err, syscall.ENOENT) {
			t.Logf("queue %d: %v", num, err)
		}
		return 0
	})
	if err != nil {
		t.Fatalf("register queue %d handler: %v", num, err)
	}
	return q
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

func (q *testQueue) setOnPayload(fn func(b []byte)) {
	q.mu.Lock()
	q.onPayload = fn
	q.mu.Unlock()
}
