package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/qguard/qguard/queue"
)

func verdictMode(s string) queue.VerdictMode {
	switch s {
	case "perpacket":
		return queue.PerPacket
	case "vectored":
		return queue.Vectored
	}
	return queue.Batch
}

// startQGuardPeer starts qguard's queue engine for mode m as its own
// process in the firewall namespace (QGuardPeer), like the C and go-nfqueue
// peers: same CPU clock, and no harness goroutine or garbage collection in
// the handler's process. handlerKind is QGuardPeer's -handler.
func (e *env) startQGuardPeer(ctx context.Context, m Mode, num uint16, handlerKind string) (*procHandler, string, error) {
	if len(e.cfg.QGuardPeer) == 0 && e.qgSkip == "" {
		path, skip := buildQGuardPeer(ctx, e.tmp)
		if skip != "" {
			e.qgSkip = skip
		} else {
			e.cfg.QGuardPeer = []string{path, "bench", "peer-qguard"}
		}
	}
	if e.qgSkip != "" {
		return nil, e.qgSkip, nil
	}
	n := max(m.Queues, 1)
	var cpus []string
	for i := range n {
		if c := e.handlerCPU(i); c >= 0 {
			cpus = append(cpus, fmt.Sprint(c))
		}
	}
	argv := append(slices.Clone(e.cfg.QGuardPeer),
		"-queue", fmt.Sprint(num), "-count", fmt.Sprint(n), "-mode", m.verdict, "-batch", fmt.Sprint(m.batch),
		"-maxlen", fmt.Sprint(e.cfg.QueueMaxLen), "-rcvbuf", fmt.Sprint(e.cfg.RcvBuf), "-cpus", strings.Join(cpus, ","),
		"-handler", handlerKind, "-rules", fmt.Sprint(m.rules))
	// One queue: the whole process on the handler CPU, as the peers run.
	// Several: the queue threads pin themselves to their CPUs.
	pin := e.handlerCPU(0)
	if n > 1 {
		pin = -1
	}
	h, err := startProc(ctx, e.t.Firewall, pin, e.cfg.QGuardPeerEnv, argv...)
	return h, "", err
}

// startQGuard starts a qguard mode's handler.
func startQGuard(ctx context.Context, e *env, m Mode, num uint16) (handler, string, error) {
	switch m.kind {
	case "qguard":
		return e.procOrSkip(e.startQGuardPeer(ctx, m, num, "accept"))
	}
	return startExtra(ctx, e, m, num)
}

// procOrSkip turns a nil *procHandler into a nil handler interface.
func (e *env) procOrSkip(p *procHandler, skip string, err error) (handler, string, error) {
	if p == nil {
		return nil, skip, err
	}
	return p, skip, err
}
