package queue

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestIntegrationQuiesce(t *testing.T) {
	e := newQEnv(t)
	t.Run("FailOpenLosesNothing", e.testQuiesceFailOpen)
	t.Run("FailClosedDropsNew", e.testQuiesceFailClosed)
}

// flood sends numbered UDP datagrams on c, about 20,000 a second, until the
// returned function is called; that returns how many were sent.
func flood(t *testing.T, c *net.UDPConn) func() uint32 {
	t.Helper()
	var stop atomic.Bool
	var sent uint32
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16)
		for next := time.Now(); !stop.Load(); next = next.Add(time.Millisecond) {
			for range 20 {
				binary.BigEndian.PutUint32(buf, sent)
				if _, err := c.Write(buf); err != nil {
					t.Errorf("send %d: %v", sent, err)
					return
				}
				sent++
			}
			time.Sleep(time.Until(next))
		}
	}()
	return func() uint32 {
		stop.Store(true)
		<-done
		return sent
	}
}

// distinct counts the distinct sequence numbers arriving on c until
// nothing came for idle; it runs until the returned function is called,
// which returns the count.
func distinct(c *net.UDPConn) func(idle time.Duration) int {
	var mu sync.Mutex
	seen := map[uint32]bool{}
	var last atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			last.Store(time.Now().UnixNano())
			if n >= 4 {
				mu.Lock()
				seen[binary.BigEndian.Uint32(buf)] = true
				mu.Unlock()
			}
		}
	}()
	return func(idle time.Duration) int {
		for time.Since(time.Unix(0, last.Load())) < idle {
			time.Sleep(idle / 4)
		}
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
}

// stallAndQuiesce runs a handler that stalls once seen reaches 2000 (so
// a backlog builds in the kernel queue), asks for Quiesce during the stall,
// and releases the handler. It returns how many packets the kernel held
// just before the release: they were queued before the queue length went
// to 0 and must still take their verdicts.
func stallAndQuiesce(t *testing.T, q *Queues, seen *atomic.Int64) uint32 {
	t.Helper()
	release, stalled := make(chan struct{}), make(chan struct{})
	run(t, q, func(p *Packet) {
		if seen.Add(1) == 2000 {
			close(stalled)
			<-release
		}
		p.Accept()
	})
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("handler saw fewer than 2000 packets in 10s")
	}
	qdone := make(chan error, 1)
	go func() { qdone <- q.Quiesce() }()
	time.Sleep(50 * time.Millisecond)
	held := q.Stats()[0].Kernel.QueueTotal
	close(release)
	if err := <-qdone; err != nil {
		t.Fatalf("Quiesce: %v", err)
	}
	return held
}

// quiesceRun is a flood to a port whose packets a stalled handler holds
// while the queue quiesces (see stallAndQuiesce).
type quiesceRun struct {
	count    func(idle time.Duration) int // distinct datagrams the server got
	stopSend func() uint32                // stops the flood: how many were sent
	seen     atomic.Int64                 // packets the handler saw
	held     uint32                       // packets the kernel held at the release
}

func (e *qenv) floodAndQuiesce(t *testing.T, q *Queues, port int) *quiesceRun {
	t.Helper()
	srv := e.sink(t, port)
	_ = srv.SetReadBuffer(16 << 20)
	r := &quiesceRun{count: distinct(srv)}
	r.stopSend = flood(t, e.client(t, e.top.ServerIP4, port))
	r.held = stallAndQuiesce(t, q, &r.seen)
	return r
}

func (e *qenv) testQuiesceFailOpen(t *testing.T) {
	e.steer(t, "-p udp --dport 9011 -j NFQUEUE --queue-num 19 --queue-bypass")
	q := e.open(t, &Config{Num: 19, MaxLen: 8192, Flags: FlagFailOpen})
	r := e.floodAndQuiesce(t, q, 9011)
	s := q.Stats()[0]
	after := r.seen.Load()
	time.Sleep(100 * time.Millisecond) // traffic passes fail-open, unseen
	if r.seen.Load() != after || s.Kernel.QueueTotal != 0 {
		t.Errorf("after Quiesce the handler still saw packets (%d -> %d) or the kernel holds %d",
			after, r.seen.Load(), s.Kernel.QueueTotal)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // unbound: the rule's bypass accepts
	sent := r.stopSend()
	got := r.count(200 * time.Millisecond)
	s = q.Stats()[0]
	verdicts := s.Accepted + s.Dropped + s.Repeated + s.Queued
	t.Logf("sent %d, arrived %d; %d held in the queue when it quiesced; handler saw %d, verdicts %d",
		sent, got, r.held, r.seen.Load(), verdicts)
	if r.held == 0 {
		t.Error("no backlog in the kernel queue during the stall: the test proves nothing")
	}
	if got != int(sent) || uint64(r.seen.Load()) != s.Received || verdicts != s.Received {
		t.Fatalf("%d of %d lost; handler saw %d, received %d, verdicts %d", int(sent)-got, sent, r.seen.Load(), s.Received, verdicts)
	}
}

func (e *qenv) testQuiesceFailClosed(t *testing.T) {
	e.steer(t, "-p udp --dport 9012 -j NFQUEUE --queue-num 20")
	q := e.open(t, &Config{Num: 20, MaxLen: 8192})
	r := e.floodAndQuiesce(t, q, 9012)
	time.Sleep(100 * time.Millisecond) // new packets find the queue full
	sent := r.stopSend()
	got := r.count(200 * time.Millisecond)
	s := q.Stats()[0]
	t.Logf("sent %d, arrived %d, handler saw %d; %d held when it quiesced; kernel dropped %d", sent, got, r.seen.Load(), r.held, s.Kernel.QueueDropped)
	if r.held == 0 || int64(got) != r.seen.Load() || s.Kernel.QueueTotal != 0 {
		t.Fatalf("held %d; arrived %d but the handler accepted %d; kernel holds %d", r.held, got, r.seen.Load(), s.Kernel.QueueTotal)
	}
	if uint64(got)+uint64(s.Kernel.QueueDropped) != uint64(sent) || s.Kernel.QueueDropped < 1000 {
		t.Fatalf("sent %d = arrived %d + dropped at the full queue %d does not hold (or too few dropped)", sent, got, s.Kernel.QueueDropped)
	}
}
