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

func (e *qenv) testQuiesceFailOpen(t *testing.T) {
	e.steer(t, "-p udp --dport 9011 -j NFQUEUE --queue-num 19 --queue-bypass")
	q := e.open(t, &Config{Num: 19, MaxLen: 8192, Flags: FlagFailOpen})
	srv := e.sink(t, 9011)
	_ = srv.SetReadBuffer(16 << 20)
	count := distinct(srv)
	stopSend := flood(t, e.client(t, e.top.ServerIP4, 9011))
	var seen atomic.Int64
	held := stallAndQuiesce(t, q, &seen)
	s := q.Stats()[0]
	after := seen.Load()
	time.Sleep(100 * time.Millisecond) // traffic passes fail-open, unseen
	if seen.Load() != after || s.Kernel.QueueTotal != 0 {
		t.Errorf("after Quiesce the handler still saw packets (%d -> %d) or the kernel holds %d",
			after, seen.Load(), s.Kernel.QueueTotal)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // unbound: the rule's bypass accepts
	sent := stopSend()
	got := count(200 * time.Millisecond)
	s = q.Stats()[0]
	verdicts := s.Accepted + s.Dropped + s.Repeated + s.Queued
	t.Logf("sent %d, arrived %d; %d held in the queue when it quiesced; handler saw %d, verdicts %d",
		sent, got, held, seen.Load(), verdicts)
	if held == 0 {
		t.Error("no backlog in the kernel queue during the stall: the test proves nothing")
	}
	if got != int(sent) || uint64(seen.Load()) != s.Received || verdicts != s.Received {
		t.Fatalf("%d of %d lost; handler saw %d, received %d, verdicts %d", int(sent)-got, sent, seen.Load(), s.Received, verdicts)
	}
}

func (e *qenv) testQuiesceFailClosed(t *testing.T) {
	e.steer(t, "-p udp --dport 9012 -j NFQUEUE --queue-num 20")
	q := e.open(t, &Config{Num: 20, MaxLen: 8192})
	srv := e.sink(t, 9012)
	_ = srv.SetReadBuffer(16 << 20)
	count := distinct(srv)
	stopSend := flood(t, e.client(t, e.top.ServerIP4, 9012))
	var seen atomic.Int64
	held := stallAndQuiesce(t, q, &seen)
	time.Sleep(100 * time.Millisecond) // new packets find the queue full
	sent := stopSend()
	got := count(200 * time.Millisecond)
	s := q.Stats()[0]
	t.Logf("sent %d, arrived %d, handler saw %d; %d held when it quiesced; kernel dropped %d", sent, got, seen.Load(), held, s.Kernel.QueueDropped)
	if held == 0 || int64(got) != seen.Load() || s.Kernel.QueueTotal != 0 {
		t.Fatalf("held %d; arrived %d but the handler accepted %d; kernel holds %d", held, got, seen.Load(), s.Kernel.QueueTotal)
	}
	if uint64(got)+uint64(s.Kernel.QueueDropped) != uint64(sent) || s.Kernel.QueueDropped < 1000 {
		t.Fatalf("sent %d = arrived %d + dropped at the full queue %d does not hold (or too few dropped)", sent, got, s.Kernel.QueueDropped)
	}
}
