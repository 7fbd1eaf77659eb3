package bench

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/topo"
)

//go:embed peers/nfq_accept.c
var nfqAcceptC []byte

// buildCPeer compiles the C peer into dir. It returns the binary's path, or
// why it could not be built (then the C modes are reported as skipped).
func buildCPeer(ctx context.Context, cc, srcDir, dir string) (path, skip string) {
	if _, err := exec.LookPath(cc); err != nil {
		return "", fmt.Sprintf("C peer not built: no C compiler %q in PATH", cc)
	}
	src := filepath.Join(dir, "nfq_accept.c")
	if srcDir != "" {
		src = filepath.Join(srcDir, "nfq_accept.c")
	} else if err := os.WriteFile(src, nfqAcceptC, 0o600); err != nil {
		return "", fmt.Sprintf("C peer not built: write source: %v", err)
	}
	path = filepath.Join(dir, "nfq_accept")
	cmd := exec.CommandContext(ctx, cc, "-O2", "-o", path, src, "-lnetfilter_queue")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "libnetfilter_queue.h") || strings.Contains(msg, "-lnetfilter_queue") {
			return "", "C peer not built: libnetfilter_queue headers or library missing (Debian: libnetfilter-queue-dev)"
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return "", fmt.Sprintf("C peer not built: %s: %v: %s", cc, err, msg)
	}
	return path, ""
}

// cPeer starts the C peer with verdict batches of batch packets (1: a
// verdict per packet), asking for GSO super-packets where the mode has gso.
func cPeer(batch int) startFunc {
	return func(ctx context.Context, e *env, m *Mode, q uint16) (handler, error) {
		if e.cSkip != "" {
			return nil, skipf("%s", e.cSkip)
		}
		argv := []string{e.cPeer, fmt.Sprint(q), fmt.Sprint(batch), fmt.Sprint(e.cfg.QueueMaxLen), fmt.Sprint(e.cfg.RcvBuf)}
		if m.gso {
			argv = append(argv, "gso")
		}
		return startProc(ctx, e.t.Firewall, procSpec{th: e.thread(e.handlerCPU(0)), argv: argv})
	}
}

// goPeer starts the go-nfqueue peer with verdict batches of batch packets
// (1: SetVerdict per packet, as its README shows).
func goPeer(batch int) startFunc {
	return func(ctx context.Context, e *env, m *Mode, q uint16) (handler, error) {
		argv, err := builtCommand(&e.cfg.GoPeer, &e.goSkip, func() (string, string) { return buildGoPeer(ctx, e.tmp) })
		if err != nil {
			return nil, err
		}
		argv = append(argv, "-queue", fmt.Sprint(q), "-batch", fmt.Sprint(batch))
		if m.gso {
			argv = append(argv, "-gso")
		}
		return startProc(ctx, e.t.Firewall, procSpec{th: e.thread(e.handlerCPU(0)), env: e.cfg.GoPeerEnv, argv: argv})
	}
}

// buildGoPeer builds bench/peers/gonfqueue/main with the go tool from the
// source tree this package was compiled from, for callers that name no
// peer command. It returns the binary, or why it could not be built.
func buildGoPeer(ctx context.Context, dir string) (path, skip string) {
	return goBuild(ctx, dir, "./bench/peers/gonfqueue/main", "gonfqueue-peer", "go-nfqueue peer", "Config.GoPeer")
}

// buildQGuardPeer builds cmd/qguard, whose hidden `bench peer-qguard` runs
// QGuardPeer, for callers that name no qguard peer command.
func buildQGuardPeer(ctx context.Context, dir string) (path, skip string) {
	return goBuild(ctx, dir, "./cmd/qguard", "qguard-peer", "qguard peer", "Config.QGuardPeer")
}

// goBuild builds pkg of this package's source tree into dir/out.
func goBuild(ctx context.Context, dir, pkg, out, what, field string) (path, skip string) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", what + " not built: source location unknown (set " + field + ")"
	}
	root := filepath.Dir(filepath.Dir(file)) // the module root, above bench/
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(pkg))); err != nil {
		return "", what + " not built: no source tree at " + root + " (set " + field + ", as `qguard bench` does)"
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", what + " not built: no go tool in PATH (set " + field + ", as `qguard bench` does)"
	}
	path = filepath.Join(dir, out)
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", path, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return "", fmt.Sprintf("%s not built: go build: %v: %s", what, err, msg)
	}
	return path, ""
}

// procHandler is a peer running as its own process in the firewall
// namespace; its CPU time is the whole process's.
type procHandler struct {
	cmd  *exec.Cmd
	out  tailBuffer // the end of its stdout and stderr, for errors
	done chan error
	// cleanup runs after the process exited (a daemon's temp files).
	cleanup func()
}

// procSpec is how to start a handler process.
type procSpec struct {
	argv []string
	env  []string // added to the environment
	th   thread   // where the process (every thread it starts) runs
	// ready tells the line that says the handler is bound (default: a line
	// "ready").
	ready func(line string) bool
}

func isReadyLine(line string) bool { return strings.TrimSpace(line) == "ready" }

// startProc starts sp in ns and waits for it to say it is ready.
func startProc(ctx context.Context, ns topo.NS, sp procSpec) (*procHandler, error) {
	p := &procHandler{done: make(chan error, 1)}
	if sp.ready == nil {
		sp.ready = isReadyLine
	}
	p.cmd = ns.Command(ctx, sp.argv...)
	p.cmd.Env = append(os.Environ(), sp.env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start peer %s: %w", sp.argv[0], err)
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	err = startPinned(p.cmd, sp.th)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start peer %s: %w", sp.argv[0], err)
	}
	ready := make(chan bool, 1)
	go func() {
		defer pr.Close()
		r := bufio.NewReader(pr)
		sent := false
		for {
			line, err := r.ReadString('\n')
			p.out.add(line)
			if !sent && sp.ready(line) {
				ready <- true
				sent = true
			}
			if err != nil {
				break
			}
		}
		if !sent {
			ready <- false
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if ok {
			return p, nil
		}
		err = <-p.done
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		err = errors.Join(errors.New("not ready after 20s"), <-p.done)
	}
	return nil, fmt.Errorf("start peer %s: %w: %s", filepath.Base(sp.argv[0]), err, p.errText())
}

// tailBuffer keeps the last few KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, s...)
	if n := len(t.b) - 8<<10; n > 0 {
		t.b = append(t.b[:0], t.b[n:]...)
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (p *procHandler) errText() string { return strings.TrimSpace(p.out.String()) }

// cpu reads the process CPU clock. `ip netns exec` execs the peer in
// place, so the child's pid is the peer's.
func (p *procHandler) cpu() (time.Duration, error) {
	return processCPU(p.cmd.Process.Pid)
}

func (p *procHandler) userSys() (time.Duration, time.Duration, error) {
	return statTimes(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
}

// close asks the peer to stop (it verdicts what it holds and unbinds) and
// kills it if it does not.
func (p *procHandler) close() error {
	if p.cleanup != nil {
		defer p.cleanup()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("stop peer: %w: %s", err, p.errText())
		}
		return nil
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("stop peer: killed after 5s (%v): %s", <-p.done, p.errText())
	}
}

// startPinned starts cmd from a thread pinned to cpu: the fork happens on
// the calling thread, so the child and all its threads inherit the mask.
func startPinned(cmd *exec.Cmd, th thread) error {
	cpu, nice := th.cpu, th.nice
	if cpu < 0 && nice == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	if nice != 0 {
		// The thread goes back to the scheduler afterwards, so its nice
		// value is restored too.
		if err := renice(0, nice); err == nil {
			defer func() { _ = renice(0, 0) }()
		}
	}
	if cpu < 0 {
		defer runtime.UnlockOSThread()
		return cmd.Start()
	}
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read CPU mask: %w", err)
	}
	if err := pinThread(cpu); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	err := cmd.Start()
	if unix.SchedSetaffinity(0, &orig) == nil {
		runtime.UnlockOSThread()
	} // else: leave the thread locked; the runtime discards it with the goroutine.
	return err
}
