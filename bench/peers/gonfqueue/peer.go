// Package gonfqueue is the go-nfqueue v2 peer of the benchmark harness: an
// accept-all handler written the way go-nfqueue's README and example show it
// (one SetVerdict per packet), plus a variant that uses its SetVerdictBatch.
//
// The harness runs it as a separate process inside the firewall namespace
// (`qguard bench peer-gonfqueue`, or a test binary's TestMain), so its CPU
// time is the whole process's and its garbage collector is its own.
package gonfqueue

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// Main runs the peer with command-line args (without the program name):
//
//	-queue N   queue number (default 0)
//	-batch N   0 or 1: SetVerdict per packet; N > 1: SetVerdictBatch every
//	           N packets and on a 1 ms timer, so no packet waits long
//	-gso       set go-nfqueue's NfQaCfgFlagGSO: GSO super-packets are
//	           queued whole, not segmented first
//
// It prints "ready" once bound and returns on SIGTERM or SIGINT.
func Main(args []string) error {
	fs := flag.NewFlagSet("peer-gonfqueue", flag.ContinueOnError)
	num := fs.Uint("queue", 0, "queue number")
	batch := fs.Int("batch", 0, "verdict batch size (0 or 1: per packet)")
	gso := fs.Bool("gso", false, "queue GSO super-packets whole (NfQaCfgFlagGSO)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *num > 0xffff {
		return fmt.Errorf("parse -queue: %d out of range 0-65535", *num)
	}
	// The README's configuration, verbatim apart from the queue number.
	config := nfqueue.Config{
		NfQueue:      uint16(*num),
		MaxPacketLen: 0xFFFF,
		MaxQueueLen:  0xFF,
		Copymode:     nfqueue.NfQnlCopyPacket,
		WriteTimeout: 15 * time.Millisecond,
	}
	if *gso {
		config.Flags = nfqueue.NfQaCfgFlagGSO
	}
	nf, err := nfqueue.Open(&config)
	if err != nil {
		return fmt.Errorf("open nfqueue: %w", err)
	}
	defer nf.Close()
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		return fmt.Errorf("set NoENOBUFS: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var (
		mu      sync.Mutex
		pending int
		lastID  uint32
	)
	fn := func(a nfqueue.Attribute) int {
		id := *a.PacketID
		if *batch <= 1 {
			_ = nf.SetVerdict(id, nfqueue.NfAccept)
			return 0
		}
		mu.Lock()
		lastID = id
		pending++
		if pending >= *batch {
			_ = nf.SetVerdictBatch(lastID, nfqueue.NfAccept)
			pending = 0
		}
		mu.Unlock()
		return 0
	}
	errFn := func(e error) int {
		if errors.Is(e, context.Canceled) {
			return 1
		}
		fmt.Fprintln(os.Stderr, "peer-gonfqueue:", e)
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, fn, errFn); err != nil {
		return fmt.Errorf("register hook: %w", err)
	}
	if *batch > 1 {
		// go-nfqueue's callback cannot see when the socket runs dry, so a
		// short timer flushes a partial batch.
		go func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				mu.Lock()
				if pending > 0 {
					_ = nf.SetVerdictBatch(lastID, nfqueue.NfAccept)
					pending = 0
				}
				mu.Unlock()
			}
		}()
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ready")
	w.Flush()
	<-ctx.Done()
	mu.Lock()
	if pending > 0 {
		_ = nf.SetVerdictBatch(lastID, nfqueue.NfAccept)
	}
	mu.Unlock()
	return nil
}
