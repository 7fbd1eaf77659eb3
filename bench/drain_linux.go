package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// The drain phase measures what a handler can push through, not what the
// generator can offer: on a small machine the generator's CPU, which also
// carries the firewall's queueing work, runs out before a good handler's
// does, so the flood phase shows every fast enough handler at the same rate.
// With the handler stopped (SIGSTOP) the generator fills the kernel queue;
// the handler is resumed and timed until the kernel holds no packet waiting
// for a verdict. Nothing else runs meanwhile, so the rate is the handler's
// CPU alone: its receive, its verdicts, and the reinjection and forwarding
// its verdict system calls carry out.

// pauser is a handler that can be stopped and resumed.
type pauser interface {
	pause() error
	resume() error
}

// errDrain marks drain-phase failures; errUntimed a burst that emptied
// between two looks of the poller; errDisturbed a burst that lost frames
// to a full queue because other packets (the latency probe's late
// echoes) took room in it.
var (
	errDrain     = errors.New("drain phase")
	errUntimed   = errors.New("untimed")
	errDisturbed = errors.New("disturbed")
)

// drainTimeout bounds every wait of the drain phase.
const drainTimeout = 10 * time.Second

// drainBurst is the packets per burst: what the kernel queue holds.
func (e *env) drainBurst() int { return min(e.cfg.DrainBurst, e.cfg.QueueMaxLen) }

// drain runs cfg.DrainBursts bursts and sets s's drain figures: the
// packets drained and the seconds it took in total, and the bursts
// discarded for foreign packets.
func (e *env) drain(ctx context.Context, r *modeRun, s *Sample) error {
	m := r.m
	p, ok := r.h.(pauser)
	if !ok {
		return fmt.Errorf("%w: %s: handler cannot be paused", errDrain, m.Name)
	}
	st, err := openNFQStats(e.t.Firewall)
	if err != nil {
		return err
	}
	defer st.Close()
	size := 64
	if m.Traffic == UDPMTU {
		size = 1500
	}
	burst := e.drainBurst()
	// A burst the poller could not time (its thread did not run while the
	// queue emptied: other load on the machine) is delivered and checked
	// but not counted, and so is one that lost frames to a queue filled by
	// foreign packets (every loss named and explained by them); as many
	// again may be retried before the mode fails.
	retried := 0
	for done := 0; done < e.cfg.DrainBursts; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, d, foreign, err := e.drainOnce(r, p, st, burst, size)
		if (errors.Is(err, errUntimed) || errors.Is(err, errDisturbed)) && retried < e.cfg.DrainBursts {
			retried++
			if errors.Is(err, errDisturbed) {
				s.DrainDisturbed++
				s.DrainForeign += foreign
			}
			continue
		}
		if err != nil {
			return err
		}
		s.DrainPackets += n
		s.DrainSeconds += d.Seconds()
		done++
	}
	return nil
}

// drainOnce is one burst: stop, fill, resume, time the drain. It returns
// the packets verdicted in the timed part of the drain and its length,
// and with errDisturbed the foreign packets that disturbed it.
func (e *env) drainOnce(r *modeRun, p pauser, st *nfqStatFile, burst, size int) (_ uint64, _ time.Duration, foreign uint64, err error) {
	m, num := r.m, r.q
	// Resumed on every way out, a failed pause included (it may have
	// stopped some threads).
	paused := true
	defer func() {
		if paused {
			_ = p.resume()
		}
	}()
	// The burst fills the queue to its length, so a packet still queued
	// (a late echo of the latency probe) would push one of its frames
	// out: start from an empty queue.
	if err := e.quiesce(r, st); err != nil {
		return 0, 0, 0, err
	}
	if err := p.pause(); err != nil {
		return 0, 0, 0, err
	}
	before, err := e.lossCounters(r, st)
	if err != nil {
		return 0, 0, 0, err
	}
	e.gen.burst(e.genThread(), size, burst)
	// Wait for the queue to stop growing: the last frames may still be on
	// their way through the firewall.
	var waiting uint64
	deadline := time.Now().Add(drainTimeout)
	for stable := 0; stable < 3; {
		time.Sleep(time.Millisecond)
		w, err := st.waiting(num, max(m.Queues, 1))
		if err != nil {
			return 0, 0, 0, err
		}
		if w == waiting {
			stable++
		} else {
			waiting, stable = w, 0
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("%w: %s: queue still growing after %s", errDrain, m.Name, drainTimeout)
		}
	}
	if waiting == 0 {
		return 0, 0, 0, fmt.Errorf("%w: %s: a burst of %d packets queued none", errDrain, m.Name, burst)
	}
	// The resume and the polling run on a thread pinned to the
	// generator's CPU, idle now: anywhere else they would share the
	// handler's CPU with it. The rate is taken between the first look at
	// or below 90% of the burst and the first at or below 10%, from the
	// counts seen at those looks: the handler's steady rate, without the
	// resume from SIGSTOP (a Go runtime wakes more threads than C does)
	// and without the last partial batch.
	var (
		start, tHi, tLo time.Time
		wHi, wLo        uint64
		perr            error
		wg              sync.WaitGroup
	)
	paused = false
	e.genThread().loop(&wg, func() {
		start = time.Now()
		if perr = p.resume(); perr != nil {
			return
		}
		for {
			w, err := st.waiting(num, max(m.Queues, 1))
			if err != nil {
				perr = err
				return
			}
			now := time.Now()
			if tHi.IsZero() && w*10 <= waiting*9 {
				tHi, wHi = now, w
			}
			if tLo.IsZero() && w*10 <= waiting {
				tLo, wLo = now, w
			}
			if w == 0 {
				return
			}
			if now.Sub(start) > drainTimeout {
				perr = fmt.Errorf("%w: %s: %d of %d packets still waiting for a verdict after %s", errDrain, m.Name, w, waiting, drainTimeout)
				return
			}
		}
	})
	wg.Wait()
	if perr != nil {
		return 0, 0, 0, perr
	}
	// Every frame of the burst must have reached the sink: a handler that
	// "drains" by dropping would otherwise look fast. The sink counts the
	// flood port alone, so the check is against what the generator sent,
	// not what the queue held (which may include foreign packets).
	var d lossCounters
	for deadline := time.Now().Add(time.Second); ; time.Sleep(2 * time.Millisecond) {
		after, err := e.lossCounters(r, st)
		if err != nil {
			return 0, 0, 0, err
		}
		d = after.sub(before)
		d.waiting = waiting
		if d.sink >= d.sent || time.Now().After(deadline) {
			break
		}
	}
	if d.sink < d.sent {
		lost := d.sent - d.sink
		if f := d.foreign(); f > 0 && lost <= d.qDropped && d.qDropped <= f {
			return 0, 0, f, fmt.Errorf("%w: %w: %s: %d foreign packets in the queue pushed %d frames of the burst out: %s",
				errDrain, errDisturbed, m.Name, f, lost, d)
		}
		return 0, 0, 0, fmt.Errorf("%w: %s: sink counted %d of %d burst frames (%d queued waiting): %s",
			errDrain, m.Name, d.sink, d.sent, waiting, d)
	}
	if wHi <= wLo || !tLo.After(tHi) {
		return 0, 0, 0, fmt.Errorf("%w: %w: %s: burst of %d drained too fast to time (%d -> %d waiting)", errDrain, errUntimed, m.Name, waiting, wHi, wLo)
	}
	return wHi - wLo, tLo.Sub(tHi), 0, nil
}

// quiesce waits until the mode's queues hold no packet.
func (e *env) quiesce(r *modeRun, st *nfqStatFile) error {
	deadline := time.Now().Add(drainTimeout)
	for empty := 0; empty < 3; time.Sleep(time.Millisecond) {
		w, err := st.waiting(r.q, max(r.m.Queues, 1))
		if err != nil {
			return err
		}
		if empty++; w > 0 {
			empty = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s: %d packets still queued before the burst after %s", errDrain, r.m.Name, w, drainTimeout)
		}
	}
	return nil
}

// nfqStatFile is /proc/net/netfilter/nfnetlink_queue of one namespace,
// opened once (the file follows the namespace it was opened in) and read
// again from the start for every look.
type nfqStatFile struct {
	f   *os.File
	buf []byte
}

func openNFQStats(ns topo.NS) (*nfqStatFile, error) {
	var f *os.File
	err := ns.Do(func() error {
		var err error
		f, err = os.Open("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: open nfnetlink_queue stats in %s: %w", errDrain, ns.Name, err)
	}
	return &nfqStatFile{f: f, buf: make([]byte, 64<<10)}, nil
}

// waiting is the packets of queues [first, first+count) waiting for a
// verdict now (queue_total).
func (s *nfqStatFile) waiting(first uint16, count int) (uint64, error) {
	st, err := s.read()
	if err != nil {
		return 0, err
	}
	var w uint64
	for _, q := range st {
		if int(q.Queue) >= int(first) && int(q.Queue) < int(first)+count {
			w += uint64(q.QueueTotal)
		}
	}
	return w, nil
}

// readRaw reads the file again from its start into buf.
func (s *nfqStatFile) readRaw() (int, error) {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("%w: rewind nfnetlink_queue stats: %w", errDrain, err)
	}
	n, err := io.ReadFull(s.f, s.buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%w: read nfnetlink_queue stats: %w", errDrain, err)
	}
	return n, nil
}

func (s *nfqStatFile) Close() error { return s.f.Close() }

// pause stops the peer process (SIGSTOP) and waits until every one of its
// threads has stopped.
func (p *procHandler) pause() error {
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("%w: stop peer %d: %w", errDrain, pid, err)
	}
	deadline := time.Now().Add(drainTimeout)
	for {
		stopped, err := allStopped(pid)
		if err != nil {
			return fmt.Errorf("%w: stop peer %d: %w", errDrain, pid, err)
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: stop peer %d: threads still running after %s", errDrain, pid, drainTimeout)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (p *procHandler) resume() error {
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("%w: resume peer %d: %w", errDrain, p.cmd.Process.Pid, err)
	}
	return nil
}

// allStopped reports whether every thread of pid is in the stopped state.
func allStopped(pid int) (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false, fmt.Errorf("list threads: %v", err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			return false, err
		}
		// The state follows the command name in parentheses, which may
		// itself hold spaces or parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("parse %s", t)
		}
		if b[i+2] != 'T' && b[i+2] != 't' {
			return false, nil
		}
	}
	return true, nil
}

// burst sends n packets of ipSize bytes from a thread placed as th says and
// returns once they are sent.
func (g *generator) burst(th thread, ipSize, n int) {
	var wg sync.WaitGroup
	if g.kind == genPacket {
		b := g.frames(ipSize)
		th.loop(&wg, func() {
			for left := n; left > 0; {
				k, err := sendmmsg(g.fds[0], b.msgs[:min(left, len(b.msgs))])
				if err != nil {
					return
				}
				g.sent.n.Add(uint64(k))
				left -= k
			}
		})
		wg.Wait()
		return
	}
	v4 := newMmsgBatch(1, udpPayload(ipSize, false))
	v6 := newMmsgBatch(1, udpPayload(ipSize, true))
	fams := g.families()
	th.loop(&wg, func() {
		for i := range n {
			fd := g.fds[i%len(g.fds)]
			b := v4
			if fams[i%len(g.fds)] {
				b = v6
			}
			if k, err := sendmmsg(fd, b.msgs); err == nil {
				g.sent.n.Add(uint64(k))
			}
		}
	})
	wg.Wait()
}
