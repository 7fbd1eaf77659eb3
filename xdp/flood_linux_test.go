package xdp

import (
	"net"
	"sync"
	"testing"
	"time"
)

// BenchmarkIntegrationFlood floods UDP from a blocked client source
// through the lab topology for one second per iteration and reports what
// the XDP program on fw-c dropped. The sender (connected UDP sockets, one
// per CPU, in the client namespace) is the bottleneck on a small machine:
// the figure shows XDP keeping up with it (dropped == sent, nothing reaches
// the forward chain), not XDP's ceiling; BenchmarkProgram gives that.
func BenchmarkIntegrationFlood(b *testing.B) {
	l := newLab(b)
	f, err := l.attach(&Config{Interfaces: []string{l.FwClientLink}})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.BlockSource(cli4, 0); err != nil {
		b.Fatal(err)
	}
	senders := 2
	var conns []*net.UDPConn
	for i := range senders {
		err := l.Client.Do(func() error {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(ap(cli4, uint16(41000+i))), net.UDPAddrFromAddrPort(ap(srv4, 9)))
			conns = append(conns, c)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	var sent, dropped uint64
	var elapsed time.Duration
	fwd0 := l.counter("blocked4")
	for b.Loop() {
		before := f.Stats()
		start := time.Now()
		stop := start.Add(time.Second)
		counts := make([]uint64, senders)
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				payload := make([]byte, 18) // 64-byte frames
				for n := 0; ; n++ {
					if n%256 == 0 && time.Now().After(stop) {
						return
					}
					if _, err := c.Write(payload); err == nil {
						counts[i]++
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
		for _, n := range counts {
			sent += n
		}
		dropped += f.Stats().DroppedSource - before.DroppedSource
	}
	secs := elapsed.Seconds()
	b.ReportMetric(float64(sent)/secs, "sent-pps")
	b.ReportMetric(float64(dropped)/secs, "xdp-dropped-pps")
	if fwd := l.counter("blocked4") - fwd0; fwd != 0 {
		b.Errorf("%d flood packets reached the forward chain", fwd)
	}
	b.Logf("attached %v; sent %d, XDP dropped %d", f.Attachments(), sent, dropped)
}
