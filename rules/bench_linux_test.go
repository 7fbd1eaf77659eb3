package rules

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkIntegrationForward measures TCP bulk throughput through the
// firewall namespace three ways: without qguard's table, with every packet
// queued (the handler accepts each one), and with the flow offloaded after
// its first packet (AcceptFlow mark, then the conntrack mark rule). Run:
//
//	go test -run '^$' -bench IntegrationForward -benchtime 64x ./rules
//
// Each iteration moves 1 MiB from client to server.
func BenchmarkIntegrationForward(b *testing.B) {
	if testing.Short() {
		b.Skip("needs namespaces")
	}
	for _, mode := range []string{"no-qguard", "queued", "offloaded"} {
		b.Run(mode, func(b *testing.B) { benchForward(b, mode) })
	}
}

func benchForward(b *testing.B, mode string) {
	tp, fd := newTopo(b)
	if mode != "no-qguard" {
		m := applied(b, fwConfig(fd, QueueAuto))
		marks := m.Config().Marks
		bindQueue(b, tp.Firewall, 0, func(k flowKey) answer {
			if mode == "offloaded" {
				return repeat(marks.AcceptFlow)
			}
			return accept
		})
		b.Cleanup(func() {
			if cs, err := m.Counters(); err == nil {
				b.ReportMetric(float64(Sum(cs, "steer to queue"))/float64(b.N), "queued/op")
			}
		})
	}
	var ln net.Listener
	if err := tp.Server.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(tp.ServerIP4.String(), "7200"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	c := mustDial(b, tp.Client, "tcp", tp.ServerIP4, 7200)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	n := <-got
	b.StopTimer()
	b.ReportMetric(float64(n)/time.Since(start).Seconds()/1e6, "MB/s")
}
