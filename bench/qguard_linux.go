package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qguard/qguard/queue"
)

// Handlers of the library peer (QGuardPeer's -handler).
const (
	libAccept = "accept" // accept every packet
	libDrop   = "drop"   // drop every packet
	libPolicy = "policy" // the engine's handler on the bench policy
)

// qguardLib starts qguard's queue engine as its own process in the
// firewall namespace (QGuardPeer), like the C and go-nfqueue peers: same
// CPU clock, and no harness goroutine or garbage collection in the
// handler's process. batch 0 is the queue package's default.
func qguardLib(v queue.VerdictMode, batch int, kind string) startFunc {
	return func(ctx context.Context, e *env, m *Mode, q uint16) (handler, error) {
		argv, err := builtCommand(&e.cfg.QGuardPeer, &e.qgSkip, func() (string, string) { return buildQGuardPeer(ctx, e.tmp) },
			"bench", "peer-qguard")
		if err != nil {
			return nil, err
		}
		n := max(m.Queues, 1)
		var cpus []string
		for i := range n {
			if c := e.handlerCPU(i); c >= 0 {
				cpus = append(cpus, fmt.Sprint(c))
			}
		}
		argv = append(argv,
			"-queue", fmt.Sprint(q), "-count", fmt.Sprint(n), "-mode", v.String(), "-batch", fmt.Sprint(batch),
			"-maxlen", fmt.Sprint(e.cfg.QueueMaxLen), "-rcvbuf", fmt.Sprint(e.cfg.RcvBuf), "-cpus", strings.Join(cpus, ","),
			"-handler", kind)
		if m.gso {
			argv = append(argv, "-gso")
		}
		if kind == libPolicy {
			// The engine reads the same file the daemon's policy mode runs.
			path := filepath.Join(e.tmp, fmt.Sprintf("lib-%d.yaml", q))
			spec := daemonSpec{mode: "queue-all", rules: e.cfg.PolicyRules, batch: batch}
			if err := os.WriteFile(path, []byte(spec.yaml(e, m, q)), 0o600); err != nil {
				return nil, fmt.Errorf("write policy for %s: %w", m.Name, err)
			}
			argv = append(argv, "-config", path)
		}
		// One queue: the whole process on the handler CPU, as the peers run.
		// Several: the queue threads pin themselves to their CPUs.
		th := e.thread(e.handlerCPU(0))
		if n > 1 {
			th.cpu = -1
		}
		return startProc(ctx, e.t.Firewall, procSpec{th: th, env: e.cfg.QGuardPeerEnv, argv: argv})
	}
}
