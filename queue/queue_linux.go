package queue

import (
	"context"
	"errors"
	"os"
	"sync"
)

// Queues is a set of bound queues, Num..Num+Count-1.
type Queues struct {
	cfg   Config
	loops []*loop
	proc  *os.File // the socket namespace's nfnetlink_queue table

	mu      sync.Mutex
	state   int
	runDone chan struct{}
	last    map[uint16]KernelStats // kernel counters read just before unbinding
}

const (
	stateOpen = iota
	stateRunning
	stateClosed
)

// Open binds every queue of cfg in the calling thread's network namespace,
// or none: on error the queues bound so far are unbound again. A nil cfg
// means defaults.
func Open(cfg *Config) (*Queues, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	q := &Queues{cfg: c}
	// Opened now, the file keeps showing this namespace's queues.
	if f, err := os.Open(procQueuePath); err == nil {
		q.proc = f
	}
	for i := range int(c.Count) {
		num := c.Num + uint16(i)
		s, err := openSocket(&q.cfg, num)
		if err != nil {
			for _, l := range q.loops {
				_ = l.sock.close()
			}
			if q.proc != nil {
				q.proc.Close()
			}
			return nil, err
		}
		l := newLoop(s.fd, num, &q.cfg)
		l.sock = s
		l.beforeUnbind = func() { q.keepKernel(num) }
		q.loops = append(q.loops, l)
	}
	return q, nil
}

// Run calls h for every packet until ctx is done or Close is called, then
// drains and unbinds every queue (see the package documentation) and
// returns. It returns nil after a clean shutdown.
func (q *Queues) Run(ctx context.Context, h Handler) error {
	q.mu.Lock()
	switch q.state {
	case stateClosed:
		q.mu.Unlock()
		return ErrClosed
	case stateRunning:
		q.mu.Unlock()
		return ErrRunning
	}
	q.startLocked()
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			q.stopLoops()
		case <-finished:
		}
	}()
	err := q.eachLoop(func(i int, l *loop) error {
		cpu := -1
		if len(q.cfg.CPUs) > 0 {
			cpu = q.cfg.CPUs[i%len(q.cfg.CPUs)]
		}
		err := l.run(h, cpu)
		// One failed queue stops them all: Run's caller decides.
		q.stopLoops()
		return err
	})
	close(finished)
	q.finish()
	return err
}

// startLocked marks the queues running and releases q.mu, which the caller
// holds.
func (q *Queues) startLocked() {
	q.state = stateRunning
	q.runDone = make(chan struct{})
	q.mu.Unlock()
}

// eachLoop runs f for every loop on a goroutine of its own and returns when
// all have returned, with their errors.
func (q *Queues) eachLoop(f func(i int, l *loop) error) error {
	errs := make([]error, len(q.loops))
	var wg sync.WaitGroup
	for i, l := range q.loops {
		wg.Go(func() { errs[i] = f(i, l) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (q *Queues) stopLoops() {
	for _, l := range q.loops {
		l.halt()
	}
}

func (q *Queues) finish() {
	q.mu.Lock()
	q.state = stateClosed
	if q.proc != nil {
		q.proc.Close()
		q.proc = nil
	}
	close(q.runDone)
	q.mu.Unlock()
}

// Close stops the queues: it quiesces them (unless Quiesce did), so every
// queued packet gets its verdict, and unbinds them, waiting for a running
// Run to return. Without Run, queued packets get DefaultVerdict.
// Close is idempotent.
func (q *Queues) Close() error {
	q.mu.Lock()
	switch q.state {
	case stateRunning:
		done := q.runDone
		q.stopLoops()
		q.mu.Unlock()
		<-done
		return nil
	case stateClosed:
		done := q.runDone
		q.mu.Unlock()
		if done != nil {
			<-done
		}
		return nil
	}
	q.startLocked()
	err := q.eachLoop(func(_ int, l *loop) error { return l.shutdown() })
	q.finish()
	return err
}

// Quiesce makes the kernel queue no new packet to these queues, gives every
// packet already queued its verdict, and returns with the queues still
// bound, idle. New packets meet a queue of length 0: with FlagFailOpen the
// kernel accepts them unqueued, without it drops them (counted in
// Kernel.QueueDropped). Close after Quiesce only unbinds; Close without it
// quiesces first. Quiesce is for a caller that must act between the drain
// and the unbind: removing a netfilter hook (an nftables base chain) flushes
// every queue of the namespace, which costs nothing once they are quiesced.
// It waits for a running Run's goroutines; without Run, queued packets get
// DefaultVerdict. After Close it does nothing.
func (q *Queues) Quiesce() error {
	q.mu.Lock()
	if q.state == stateRunning {
		for _, l := range q.loops {
			l.quiesceReq.Store(true)
		}
		q.mu.Unlock()
		for _, l := range q.loops {
			<-l.quiesced
		}
		return nil
	}
	defer q.mu.Unlock()
	if q.state == stateClosed {
		return nil
	}
	return q.eachLoop(func(_ int, l *loop) error { return l.quiesce() })
}

// Stats returns every queue's counters and its kernel line. Counters are
// published by the queue goroutines at least every 16 flushes, when idle
// and at shutdown; after Close, Kernel holds the counters read just before
// the unbind.
func (q *Queues) Stats() []Stats {
	out := make([]Stats, len(q.loops))
	for i, l := range q.loops {
		out[i] = l.pub.load(l.queue)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	all := q.readKernel()
	for i := range out {
		if k, ok := q.last[out[i].Queue]; ok {
			out[i].Kernel = k
		}
		for _, k := range all {
			if k.Queue == out[i].Queue {
				out[i].Kernel = k
			}
		}
	}
	return out
}

// readKernel reads the socket namespace's queue table; q.mu is held.
func (q *Queues) readKernel() []KernelStats {
	if q.proc == nil {
		return nil
	}
	buf := make([]byte, 64<<10)
	n, err := q.proc.ReadAt(buf, 0)
	if err != nil && n == 0 {
		return nil
	}
	all, _ := ParseProcQueues(buf[:n])
	return all
}

// keepKernel saves queue num's kernel counters before its unbind.
func (q *Queues) keepKernel(num uint16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, k := range q.readKernel() {
		if k.Queue == num {
			if q.last == nil {
				q.last = make(map[uint16]KernelStats)
			}
			q.last[num] = k
		}
	}
}
