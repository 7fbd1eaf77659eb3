package rules_test

import (
	"context"
	"log"
	"net/netip"
	"time"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
)

// The daemon's life cycle: install, decide with marks, reload, shut down.
func Example() {
	cfg := rules.DefaultConfig() // or built from config.File's rules section
	m, err := rules.New(cfg)     // probes: native queue or xt NFQUEUE via compat
	if err != nil {
		log.Fatal(err)
	}
	log.Print(m.Capabilities()) // "... using compat"
	if err := m.Apply(); err != nil {
		log.Fatal(err)
	}
	marks := m.Config().Marks

	q, err := queue.Open(&queue.Config{Num: cfg.QueueNum, Count: cfg.QueueCount})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_ = q.Run(ctx, func(p *queue.Packet) {
			// Accept the whole flow in the kernel from now on:
			p.Repeat()
			p.SetMark(marks.Set(p.Mark, marks.AcceptFlow))
			// DropFlow and Reject work the same way; a plain p.Accept() or
			// p.Drop() decides this packet only.
		})
	}()
	// Block a source for five minutes without a queue round trip.
	_ = m.BlockSource(netip.MustParseAddr("198.18.1.2"), 5*time.Minute)

	// Reload: one transaction, no bypass window.
	_ = m.Replace(cfg)

	// Shutdown: stop queueing new packets first, then drain the queues,
	// then delete the table.
	_ = m.SteerAway()
	cancel()
	_ = q.Close()
	_ = m.Remove()
}
