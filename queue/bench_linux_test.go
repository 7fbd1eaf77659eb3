package queue

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// BenchmarkIntegrationForward floods 64-byte IPv4 UDP packets client ->
// firewall -> server with the firewall's FORWARD chain queueing them to this
// engine, which accepts all. It reports packets handled per second and
// system calls per packet. The generator runs on CPU 0 and the handler on
// the last CPU; the server drops the packets in an nftables input rule.
//
//	go test -run '^$' -bench IntegrationForward -benchtime 2000000x ./queue
func BenchmarkIntegrationForward(b *testing.B) {
	testutil.NeedRoot(b, "creates network namespaces and binds NFQUEUE queues")
	top := testutil.NewTopology(b, &topo.Options{Prefix: "qgqb"})
	e := &qenv{top: top}
	for _, argv := range [][]string{
		{"iptables-nft", "-t", "filter", "-A", "FORWARD", "-p", "udp", "--dport", "9100", "-j", "NFQUEUE", "--queue-num", "50"},
	} {
		if err := top.Firewall.Run(argv...); err != nil {
			b.Fatal(err)
		}
	}
	if err := top.Server.Run("nft", "add table inet sink; add chain inet sink in { type filter hook input priority 0; }; add rule inet sink in udp dport 9100 counter drop"); err != nil {
		b.Fatal(err)
	}
	cpu := runtime.NumCPU() - 1
	// batch1 reads one message per call: what a recvmsg loop does, since
	// the kernel returns one packet per recvmsg (see doc.go).
	cases := []struct {
		mode  VerdictMode
		batch int
		poll  time.Duration
	}{
		{Batch, 64, 0}, {Batch, 1, 0}, {Vectored, 64, 0}, {PerPacket, 64, 0}, {Batch, 64, 20 * time.Microsecond},
	}
	for _, c := range cases {
		mode, batch, poll := c.mode, c.batch, c.poll
		{
			b.Run(fmt.Sprintf("%s-batch%d-poll%s", mode, batch, poll), func(b *testing.B) {
				var q *Queues
				err := top.Firewall.Do(func() (err error) {
					q, err = Open(&Config{Num: 50, VerdictMode: mode, BatchSize: batch, MaxLen: 4096,
						CPUs: []int{cpu}, NoENOBUFS: true, BusyPoll: poll, Logger: quietLogger()})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				var handled atomic.Int64
				done := make(chan error, 1)
				ctx, cancel := contextWithCancel()
				// The handler runs on the queue's thread: its CPU clock is the
				// engine's whole cost, kernel work in its system calls included.
				var cpuStart, cpuEnd time.Duration
				target := int64(b.N)
				h := func(p *Packet) {
					switch handled.Add(1) {
					case 1:
						cpuStart = threadCPU()
					case target:
						cpuEnd = threadCPU()
					}
					p.Accept()
				}
				go func() { done <- q.Run(ctx, h) }()
				stopGen := e.flood(b, 0, 9100)
				b.ResetTimer()
				start := time.Now()
				for handled.Load() < int64(b.N) {
					time.Sleep(time.Millisecond)
				}
				el := time.Since(start)
				b.StopTimer()
				stopGen()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				s := q.Stats()[0]
				b.ReportMetric(float64(handled.Load())/el.Seconds(), "pkts/s")
				if b.N > 1 {
					b.ReportMetric(float64(cpuEnd-cpuStart)/float64(b.N-1), "cpu-ns/pkt")
				}
				b.ReportMetric(float64(s.Syscalls)/float64(s.Received), "syscalls/pkt")
				b.ReportMetric(float64(s.Received)/float64(max(s.RecvCalls, 1)), "pkts/recv")
				b.ReportMetric(float64(s.Received)/float64(max(s.VerdictMsgs, 1)), "pkts/verdictmsg")
			})
		}
	}
}

// flood sends 64-byte IPv4 UDP packets from the client to the server with
// sendmmsg on a thread pinned to cpu until the returned function is called.
func (e *qenv) flood(b *testing.B, cpu, port int) (stop func()) {
	var fd int
	err := e.top.Client.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: e.top.ServerIP4.As4()})
	})
	if err != nil {
		b.Fatal(err)
	}
	var halt atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the pinned thread dies with the goroutine
		var set unix.CPUSet
		set.Set(cpu)
		_ = unix.SchedSetaffinity(0, &set)
		payload := make([]byte, 64-28)
		iov := unix.Iovec{Base: &payload[0]}
		iov.SetLen(len(payload))
		mm := make([]unix.Mmsghdr, 64)
		for i := range mm {
			mm[i].Hdr.Iov = &iov
			mm[i].Hdr.SetIovlen(1)
		}
		for !halt.Load() {
			_, _, _ = unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&mm[0])), uintptr(len(mm)), 0, 0, 0)
		}
	}()
	return func() {
		halt.Store(true)
		wg.Wait()
		unix.Close(fd)
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}
