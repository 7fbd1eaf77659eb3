package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/queue"
)

// qgHandler runs qguard's queue engine in this process, one locked thread
// per queue; its CPU time is the sum of those threads' CPU clocks.
type qgHandler struct {
	q      *queue.Queues
	cancel context.CancelFunc
	done   chan error
	tids   []atomic.Int32 // thread of each queue, learnt from its first packet
	first  uint16
}

func verdictMode(s string) queue.VerdictMode {
	switch s {
	case "perpacket":
		return queue.PerPacket
	case "vectored":
		return queue.Vectored
	}
	return queue.Batch
}

// openQueues binds the mode's queues inside the firewall namespace.
func (e *env) openQueues(m Mode, num uint16) (*queue.Queues, error) {
	cpus := make([]int, max(m.Queues, 1))
	for i := range cpus {
		cpus[i] = e.handlerCPU(i)
	}
	cfg := &queue.Config{
		Num: num, Count: uint16(max(m.Queues, 1)), MaxLen: uint32(e.cfg.QueueMaxLen),
		NoENOBUFS: true, VerdictMode: verdictMode(m.verdict), BatchSize: m.batch, CPUs: cpus,
	}
	if cpus[0] < 0 {
		cfg.CPUs = nil
	}
	var q *queue.Queues
	err := e.t.Firewall.Do(func() error {
		var err error
		q, err = queue.Open(cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open qguard queues %d..%d: %w", num, int(num)+int(cfg.Count)-1, err)
	}
	return q, nil
}

// runQueues starts q with h wrapped so the handler learns each queue's thread.
func runQueues(q *queue.Queues, first uint16, n int, h queue.Handler) *qgHandler {
	ctx, cancel := context.WithCancel(context.Background())
	g := &qgHandler{q: q, cancel: cancel, done: make(chan error, 1), tids: make([]atomic.Int32, n), first: first}
	wrapped := func(p *queue.Packet) {
		if i := int(p.Queue - first); i >= 0 && i < len(g.tids) && g.tids[i].Load() == 0 {
			g.tids[i].Store(int32(unix.Gettid()))
			if n := harnessNice.Load(); n != 0 {
				_ = renice(0, int(n))
			}
		}
		h(p)
	}
	go func() { g.done <- q.Run(ctx, wrapped) }()
	return g
}

func (g *qgHandler) cpu() (time.Duration, error) {
	var sum time.Duration
	for i := range g.tids {
		tid := int(g.tids[i].Load())
		if tid == 0 {
			continue
		}
		d, err := threadCPU(tid)
		if err != nil {
			return 0, fmt.Errorf("queue %d thread %d: %w", int(g.first)+i, tid, err)
		}
		sum += d
	}
	return sum, nil
}

func (g *qgHandler) userSys() (user, sys time.Duration, err error) {
	for i := range g.tids {
		tid := int(g.tids[i].Load())
		if tid == 0 {
			continue
		}
		u, s, err := statTimes(fmt.Sprintf("/proc/self/task/%d/stat", tid))
		if err != nil {
			return 0, 0, err
		}
		user, sys = user+u, sys+s
	}
	return user, sys, nil
}

func (g *qgHandler) close() error {
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			return fmt.Errorf("stop qguard queues: %w", err)
		}
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop qguard queues: Run did not return within 10s")
	}
}

// startQGuard starts a qguard mode's handler.
func startQGuard(ctx context.Context, e *env, m Mode, num uint16) (handler, string, error) {
	switch m.kind {
	case "qguard":
		q, err := e.openQueues(m, num)
		if err != nil {
			return nil, "", err
		}
		return runQueues(q, num, max(m.Queues, 1), func(p *queue.Packet) { p.Accept() }), "", nil
	}
	return startExtra(ctx, e, m, num)
}
