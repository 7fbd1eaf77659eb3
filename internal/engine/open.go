package engine

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/xdp"
)

// undoStack holds the cleanups of the steps New has done, so that a
// failure half-way undoes exactly those, last first. Close has its own
// order (see Close): a running engine is stopped, not unwound.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

func (u *undoStack) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}

// openLinks opens the rtnetlink sockets that name interfaces
// (links_linux.go), on the thread that binds the queues.
func (e *Engine) openLinks(u *undoStack) error {
	l, err := openLinks()
	if err != nil {
		return err
	}
	e.links = l
	u.push(l.close)
	return nil
}

// openRecord opens the decision record's output and, with record.flows,
// the conntrack watch its flow records come from (a kernel without it
// only loses the flow records).
func (e *Engine) openRecord(u *undoStack) error {
	r, err := newRecorder(e.set.record, e.links.ifaces)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	e.rec = r
	u.push(func() { r.out.Close() })
	if !e.set.record.Flows {
		return nil
	}
	ct, err := openConntrack()
	if err != nil {
		e.log.Warn("no flow records", "err", err)
		return nil
	}
	e.ct = ct
	r.flows = make(chan ctEvent, 4096)
	u.push(ct.close)
	return nil
}

// probeKernel pins the namespace the rules live in and asks the kernel,
// once per start, how it can queue; installRules hands the answer to the
// rules manager. It runs before the queues are bound so that a missing
// capability is told as such.
func (e *Engine) probeKernel(u *undoStack) (rules.Capabilities, error) {
	fd, f, err := rulesNetNS(e.opts.NetNS)
	if err != nil {
		return rules.Capabilities{}, err
	}
	if f != nil {
		e.netns = f
		u.push(func() { f.Close() })
	}
	e.opts.NetNS = fd // reloads build their settings from opts
	e.set.rules.NetNS = fd
	caps, err := rules.ProbeNS(fd)
	if err == nil {
		_, err = caps.Best()
	}
	if errors.Is(err, unix.EPERM) && fd == 0 { // with a namespace, setns may be what failed
		return caps, fmt.Errorf("probe kernel for queue rules: %w (nftables and the queues need it: run as root or grant it; see docs/daemon.md): %w", ErrPrivilege, err)
	}
	if err != nil {
		return caps, fmt.Errorf("probe kernel for queue rules: %w", err)
	}
	e.log.Debug("kernel probed", "capabilities", caps.String())
	return caps, nil
}

// openQueues binds every queue or none.
func (e *Engine) openQueues(u *undoStack) error {
	qc := e.set.queue
	qc.Logger = e.log
	qc.BatchDone = e.batchDone
	q, err := queue.Open(&qc)
	if err != nil {
		return fmt.Errorf("bind queues %d..%d: %w", qc.Num, qc.Num+qc.Count-1, err)
	}
	e.q = q
	for _, qs := range e.qs {
		qs.batched = true // before Start: no packet yet
	}
	u.push(func() { _ = q.Close() })
	return nil
}

// installRules claims the table and installs it. The claim comes after the
// bind, so a second daemon on a taken queue hears that first, and before
// anything touches the table.
func (e *Engine) installRules(u *undoStack, caps rules.Capabilities) error {
	c, err := claimTable(e.opts.NetNS, e.set)
	if err != nil {
		return err
	}
	e.claim = c
	u.push(c.Release)
	m, err := rules.NewProbed(e.set.rules, caps)
	if err != nil {
		return fmt.Errorf("prepare nftables rules: %w", err)
	}
	if err := m.Apply(); err != nil {
		return fmt.Errorf("install nftables table %q: %w", e.set.rules.Table, err)
	}
	e.rules = m
	u.push(func() { _ = m.Remove() })
	e.openNflog(e.set.rules)
	e.rejectMarks = true
	e.gen.Load().flowMarks = e.set.rules.Offload // not started yet: no reader
	return nil
}

// attachXDP attaches the early-drop program, falling back to the nftables
// block sets where the kernel or the capabilities do not allow XDP.
func (e *Engine) attachXDP(u *undoStack) error {
	xc := *e.set.xdp
	xc.Logger = e.log
	f, err := xdp.Attach(&xc)
	switch {
	case err == nil:
		e.xdp = f
		u.push(func() { _ = f.Close() })
	case errors.Is(err, xdp.ErrNoInterface):
		// A typo in xdp.interfaces is a configuration mistake, not a
		// missing kernel feature: say so rather than fall back quietly.
		return fmt.Errorf("attach XDP to %v: %w: %w", xc.Interfaces, ErrConfig, err)
	case errors.Is(err, xdp.ErrUnsupported):
		e.log.Warn("XDP unavailable, blocking sources with the nftables sets instead", "err", err)
	default:
		return fmt.Errorf("attach XDP to %v: %w", xc.Interfaces, err)
	}
	return nil
}
