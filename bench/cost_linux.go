package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The cost phase: what the whole firewall spends per packet at a fixed
// offered load, well under every handler's capacity, where a 2-CPU
// machine's flood cannot rank handlers (the generator's CPU runs out
// first).
//
// Method. On this kernel family (tick-based CPU accounting, no
// IRQ_TIME_ACCOUNTING, HZ 250) /proc/stat's softirq time is sampled at
// 4 ms ticks and reported in 10 ms units: at 50k packets/s a window of
// seconds holds a few dozen samples of firewall work, too coarse to tell
// 10% apart. But veth has no interrupt: every packet's softirq work runs at
// local_bh_enable in the context of the task that sent it, where the
// scheduler's nanosecond clock charges it to that task. So the firewall's
// CPU is read from three nanosecond clocks:
//
//   - the generator's thread: its AF_PACKET sendmmsg carries the
//     firewall's receive, routing, filtering and queueing (or forwarding),
//     and the sink's ingress counter, in softirq on its own stack;
//   - the handler process (every thread): its receive and verdicts, and the
//     reinjection, forwarding and sink ingress its verdicts carry;
//   - the ksoftirqd threads: softirq work deferred when a loop ran long.
//
// From the generator's thread the calibration subtracts its own sending:
// its CPU per packet at the same rate when every frame is dropped on
// arrival at the firewall's link (a destination MAC not the firewall's).
// What remains is the firewall's work plus the sink's ingress counter,
// the same in every mode, so kernel-only forwarding is the floor and the
// modes are reported as ratios to it.
//
// Limits: softirq work that a hardware interrupt's exit runs in another
// task's context is missed (veth raises none; timers do, rarely); the
// calibration also subtracts the firewall link's drop of a foreign frame
// (tens of nanoseconds, the same for every mode); other load on the
// machine shows through caches and frequency, not through these clocks.

// calibrate measures the generator's own CPU per packet at each offered
// rate (genFloor) and finds the ksoftirqd threads; when the cost phase
// cannot run here it says why (costSkip).
func (e *env) calibrate(ctx context.Context) error {
	if e.gen.kind != genPacket || e.srv.sink.kind() != sinkNFT {
		e.costSkip = "cost at load needs the AF_PACKET generator and the nftables sink"
		return nil
	}
	if pids, err := findThreads("ksoftirqd/"); err == nil {
		e.softirqd = pids
	}
	e.genFloor = map[int]float64{}
	window := max(e.cfg.LoadDuration/2, 500*time.Millisecond)
	// What an earlier phase left in flight must not count as a foreign
	// frame that reached the sink.
	if !sleepCtx(ctx, 50*time.Millisecond) {
		return ctx.Err()
	}
	for _, rate := range e.cfg.LoadRates {
		d0, _ := e.srv.counts()
		e.gen.runPaced(e.genThread(), 64, rate, true)
		ok := sleepCtx(ctx, 200*time.Millisecond)
		c0, s0, err0 := e.gen.cpuSent()
		ok = ok && sleepCtx(ctx, window)
		c1, s1, err1 := e.gen.cpuSent()
		e.gen.halt()
		if !ok {
			return ctx.Err()
		}
		if err := firstErr(err0, err1); err != nil {
			return fmt.Errorf("calibrate the cost phase at %d packets/s: %w", rate, err)
		}
		if d1, _ := e.srv.counts(); d1 != d0 {
			return fmt.Errorf("calibrate the cost phase: %d frames to a foreign MAC reached the sink", d1-d0)
		}
		if s1 <= s0 {
			return fmt.Errorf("calibrate the cost phase at %d packets/s: nothing sent", rate)
		}
		e.genFloor[rate] = float64(c1-c0) / float64(s1-s0)
	}
	return nil
}

// costAtLoad runs the cost phase of run r: one window per offered rate.
func (e *env) costAtLoad(ctx context.Context, r *modeRun) ([]LoadSample, error) {
	var out []LoadSample
	for _, rate := range e.cfg.LoadRates {
		e.gen.runPaced(e.genThread(), 64, rate, false)
		l, err := e.costWindow(ctx, r, rate)
		e.gen.halt()
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (e *env) costWindow(ctx context.Context, r *modeRun, rate int) (LoadSample, error) {
	var l LoadSample
	if !sleepCtx(ctx, max(e.cfg.Warmup, 200*time.Millisecond)) {
		return l, ctx.Err()
	}
	errs0 := e.gen.sendErrs.n.Load()
	a, err := e.snap(r, e.gen, nil)
	if err != nil {
		return l, err
	}
	if !sleepCtx(ctx, e.cfg.LoadDuration) {
		return l, ctx.Err()
	}
	b, err := e.snap(r, e.gen, nil)
	if err != nil {
		return l, err
	}
	s := b.since(a)
	l = LoadSample{Rate: rate, Seconds: s.Seconds, Sent: s.Sent, Delivered: s.Delivered, Queued: s.Queued,
		QueueDropped: s.QueueDropped, UserDropped: s.UserDropped, GenCPU: int64(b.genCPU - a.genCPU),
		GenFloor: e.genFloor[rate], HandlerCPU: s.HandlerCPU, SoftirqdCPU: int64(b.softirqd - a.softirqd)}
	if l.Sent == 0 || a.genCPU == 0 {
		return l, fmt.Errorf("measure %s at %d packets/s: the paced generator sent %d packets in %.1fs "+
			"(its thread: %s CPU, %d failed sends, last errno %d: %v)",
			r.m.Name, rate, l.Sent, l.Seconds, time.Duration(l.GenCPU), e.gen.sendErrs.n.Load()-errs0,
			e.gen.lastErr.Load(), unix.Errno(e.gen.lastErr.Load()))
	}
	return l, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// findThreads lists the pids of kernel threads whose name starts with prefix.
func findThreads(prefix string) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte(prefix)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// threadsCPU sums the scheduler's run time of the given threads, from
// /proc/<pid>/schedstat (nanoseconds); threads that are gone count 0.
func threadsCPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			continue
		}
		f, _, _ := strings.Cut(string(b), " ")
		if ns, err := strconv.ParseInt(f, 10, 64); err == nil {
			sum += time.Duration(ns)
		}
	}
	return sum
}
