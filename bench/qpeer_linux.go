package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/queue"
)

// ErrPeerUsage is returned by QGuardPeer for bad arguments.
var ErrPeerUsage = errors.New("bad peer-qguard argument")

// QGuardPeer runs qguard's queue engine as the harness's handler process,
// the way the C and go-nfqueue peers run: its own process in the firewall
// namespace, so its garbage collector and runtime threads are its own and
// its CPU time is the whole process's. args (without the program name):
//
//	-queue N      first queue number (default 0)
//	-count N      queues, N >= 1 (default 1)
//	-mode M       batch, vectored or per-packet (default batch; queue.VerdictMode)
//	-batch N      batch size (0: the queue package's default)
//	-maxlen N     kernel queue length (0: the queue package's default)
//	-rcvbuf N     socket receive buffer in bytes (0: the queue package's default)
//	-cpus L       comma-separated CPUs of the queue threads (empty: unpinned)
//	-handler H    accept, drop or policy (default accept)
//	-config F     the policy handler's configuration file: its policy and
//	              flow table run in internal/engine's own packet handler
//	              (an offline engine: the queues are this process's)
//	-gso          queue.FlagGSO: GSO super-packets are queued whole, as the
//	              daemon's default queue.gso asks
//
// It prints "ready" once every queue is bound and returns nil after SIGTERM
// or SIGINT, once the queues are drained and unbound.
func QGuardPeer(args []string) error {
	fs := flag.NewFlagSet("peer-qguard", flag.ContinueOnError)
	num := fs.Uint("queue", 0, "first queue number")
	count := fs.Uint("count", 1, "queues")
	mode := queue.Batch
	fs.TextVar(&mode, "mode", queue.Batch, "verdict mode: batch, vectored or per-packet")
	batch := fs.Int("batch", 0, "batch size")
	maxLen := fs.Uint("maxlen", 0, "kernel queue length")
	rcvBuf := fs.Int("rcvbuf", 0, "socket receive buffer in bytes")
	cpuList := fs.String("cpus", "", "CPUs of the queue threads")
	kind := fs.String("handler", "accept", "accept, drop or policy")
	cfgPath := fs.String("config", "", "configuration file of the policy handler")
	gso := fs.Bool("gso", false, "queue GSO super-packets whole")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse peer-qguard arguments: %w: %w", ErrPeerUsage, err)
	}
	if *num+*count-1 > 0xffff || *count == 0 || *count > 64 {
		return fmt.Errorf("parse -queue %d -count %d: %w: queues out of range 0-65535", *num, *count, ErrPeerUsage)
	}
	if *batch < 0 || *maxLen > 1<<31 || *rcvBuf < 0 {
		return fmt.Errorf("parse -batch %d -maxlen %d -rcvbuf %d: %w", *batch, *maxLen, *rcvBuf, ErrPeerUsage)
	}
	var cpus []int
	if *cpuList != "" {
		for _, f := range strings.Split(*cpuList, ",") {
			c, err := strconv.Atoi(f)
			if err != nil || c < 0 {
				return fmt.Errorf("parse -cpus %q: %w: %q is not a CPU", *cpuList, ErrPeerUsage, f)
			}
			cpus = append(cpus, c)
		}
	}
	h, closeH, err := peerHandler(*kind, *cfgPath, uint16(*num), uint16(*count))
	if err != nil {
		return err
	}
	defer closeH()
	var flags queue.Flags
	if *gso {
		flags = queue.FlagGSO
	}
	q, err := queue.Open(&queue.Config{
		Num: uint16(*num), Count: uint16(*count), MaxLen: uint32(*maxLen), RcvBuf: *rcvBuf, Flags: flags,
		NoENOBUFS: true, VerdictMode: mode, BatchSize: *batch, CPUs: cpus,
	})
	if err != nil {
		return fmt.Errorf("open queues %d..%d: %w", *num, *num+*count-1, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, h) }()
	if _, err := os.Stdout.WriteString("ready\n"); err != nil {
		_ = q.Close()
		return fmt.Errorf("signal ready: %w (run: %v)", err, <-done)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("run queues: %w", err)
	}
	return nil
}

// peerHandler is QGuardPeer's packet handler of the given kind. The policy
// handler is internal/engine's Handle on an offline engine (no queue, rule
// or program of its own) built from the configuration file, with the
// queue numbers this process binds.
func peerHandler(kind, cfgPath string, num, count uint16) (queue.Handler, func(), error) {
	switch kind {
	case libAccept:
		return func(p *queue.Packet) { p.Accept() }, func() {}, nil
	case libDrop:
		return func(p *queue.Packet) { p.Drop() }, func() {}, nil
	case libPolicy:
		if cfgPath == "" {
			return nil, nil, fmt.Errorf("parse -handler policy: %w: -config names no file", ErrPeerUsage)
		}
		f, err := config.Load(cfgPath)
		if err != nil {
			return nil, nil, fmt.Errorf("load policy: %w", err)
		}
		e, err := engine.New(f, &engine.Options{Offline: true, Queue: &engine.QueueRange{Num: num, Count: count},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, fmt.Errorf("build offline engine: %w", err)
		}
		return e.Handle, func() { _ = e.Close() }, nil
	}
	return nil, nil, fmt.Errorf("parse -handler %q: %w (accept, drop, policy)", kind, ErrPeerUsage)
}
