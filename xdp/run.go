package xdp

import (
	"fmt"
	"time"
)

// Action is an XDP return code (enum xdp_action in <linux/bpf.h>).
type Action uint32

const (
	ActionAborted Action = iota // XDP_ABORTED: program error
	ActionDrop                  // XDP_DROP
	ActionPass                  // XDP_PASS
)

// String returns the kernel's name for the action.
func (a Action) String() string {
	switch a {
	case ActionAborted:
		return "XDP_ABORTED"
	case ActionDrop:
		return "XDP_DROP"
	case ActionPass:
		return "XDP_PASS"
	}
	return fmt.Sprintf("Action(%d)", uint32(a))
}

// Run runs the program once on frame (an Ethernet frame, at least 14
// bytes) through BPF_PROG_TEST_RUN, without any interface, and returns its
// verdict. Counters and hit counters move as for a received packet.
func (f *Filter) Run(frame []byte) (Action, error) {
	a, _, err := f.Benchmark(frame, 1)
	return a, err
}

// Benchmark runs the program repeat times on frame in the kernel and
// returns its verdict and the mean time per run, as measured by the kernel
// (BPF_PROG_TEST_RUN): the cost of the program itself, without the
// driver or the stack.
func (f *Filter) Benchmark(frame []byte, repeat int) (Action, time.Duration, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, 0, fmt.Errorf("xdp: test run: %w", ErrClosed)
	}
	ret, d, err := f.prog.Benchmark(frame, repeat, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("xdp: test run: %w", err)
	}
	return Action(ret), d, nil
}
