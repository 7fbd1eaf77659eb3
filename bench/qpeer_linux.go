package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"

	"github.com/qguard/qguard/verdict/packet"
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
//	-mode M       batch, vectored or perpacket (default batch)
//	-batch N      batch size (0: the queue package's default)
//	-maxlen N     kernel queue length (0: the queue package's default)
//	-rcvbuf N     socket receive buffer in bytes (0: the queue package's default)
//	-cpus L       comma-separated CPUs of the queue threads (empty: unpinned)
//	-handler H    accept, drop, policy or offload (default accept)
//	-rules N      rules of the policy handler's never-matching policy
//
// It prints "ready" once every queue is bound and returns nil after SIGTERM
// or SIGINT, once the queues are drained and unbound.
func QGuardPeer(args []string) error {
	fs := flag.NewFlagSet("peer-qguard", flag.ContinueOnError)
	num := fs.Uint("queue", 0, "first queue number")
	count := fs.Uint("count", 1, "queues")
	mode := fs.String("mode", "batch", "verdict mode: batch, vectored or perpacket")
	batch := fs.Int("batch", 0, "batch size")
	maxLen := fs.Uint("maxlen", 0, "kernel queue length")
	rcvBuf := fs.Int("rcvbuf", 0, "socket receive buffer in bytes")
	cpuList := fs.String("cpus", "", "CPUs of the queue threads")
	kind := fs.String("handler", "accept", "accept, drop, policy or offload")
	nRules := fs.Int("rules", 100, "rules of the policy handler")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse peer-qguard arguments: %w: %w", ErrPeerUsage, err)
	}
	if *num+*count-1 > 0xffff || *count == 0 || *count > 64 {
		return fmt.Errorf("parse -queue %d -count %d: %w: queues out of range 0-65535", *num, *count, ErrPeerUsage)
	}
	switch *mode {
	case "batch", "vectored", "perpacket":
	default:
		return fmt.Errorf("parse -mode %q: %w (batch, vectored, perpacket)", *mode, ErrPeerUsage)
	}
	if *batch < 0 || *maxLen > 1<<31 || *nRules < 0 || *rcvBuf < 0 {
		return fmt.Errorf("parse -batch %d -maxlen %d -rules %d -rcvbuf %d: %w", *batch, *maxLen, *nRules, *rcvBuf, ErrPeerUsage)
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
	var h queue.Handler
	switch *kind {
	case "accept":
		h = func(p *queue.Packet) { p.Accept() }
	case "drop":
		h = func(p *queue.Packet) { p.Drop() }
	case "policy", "offload":
		pol := benchPolicy(*nRules)
		var mark uint32
		if *kind == "offload" {
			pol = &verdict.Policy{Default: verdict.ActionAccept,
				Rules: []verdict.Rule{{Name: "udp-flows", Match: verdict.Match{Protos: []uint8{packet.ProtoUDP}}, Action: verdict.ActionAccept, Flow: true}}}
			mark = rules.DefaultMarks.AcceptFlow
		}
		c, err := verdict.Compile(pol)
		if err != nil {
			return fmt.Errorf("compile %s policy: %w", *kind, err)
		}
		d := &decider{pipe: verdict.NewPipeline(c, nil), flowMark: mark}
		h = d.handle
	default:
		return fmt.Errorf("parse -handler %q: %w (accept, drop, policy, offload)", *kind, ErrPeerUsage)
	}
	q, err := queue.Open(&queue.Config{
		Num: uint16(*num), Count: uint16(*count), MaxLen: uint32(*maxLen), RcvBuf: *rcvBuf,
		NoENOBUFS: true, VerdictMode: verdictMode(*mode), BatchSize: *batch, CPUs: cpus,
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
		<-done
		return fmt.Errorf("signal ready: %w", err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("run queues: %w", err)
	}
	return nil
}
