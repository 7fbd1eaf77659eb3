package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/qguard/qguard/queue"
)

// The handler sees each packet once, on its queue's goroutine, and sets one
// verdict. Payload is only valid until it returns.
func Example() {
	q, err := queue.Open(&queue.Config{Num: 0, Count: 2, Flags: queue.FlagFailOpen})
	if errors.Is(err, queue.ErrPermission) || errors.Is(err, queue.ErrQueueBusy) {
		fmt.Println("cannot bind:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = q.Run(ctx, func(p *queue.Packet) {
		switch {
		case p.HwProto == 0x86dd && len(p.Payload) >= 40 && p.Payload[6] == 58: // ICMPv6
			p.Accept()
		case bytes.Contains(p.Payload, []byte("forbidden")):
			p.Drop()
		default:
			p.SetMark(0x42) // visible to later nftables rules as meta mark
			p.Accept()
		}
	})
	if err != nil {
		fmt.Println(err)
	}
	for _, s := range q.Stats() {
		fmt.Printf("queue %d: %d packets, %d accepted, %d dropped, kernel dropped %d\n",
			s.Queue, s.Received, s.Accepted, s.Dropped, s.Kernel.QueueDropped+s.Kernel.UserDropped)
	}
}
