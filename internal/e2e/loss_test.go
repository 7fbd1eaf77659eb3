package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/service"
	"github.com/qguard/qguard/internal/topo"
)

// lossPerMs is the loss tests' packet rate: 20 a millisecond, 20,000 a
// second, through the firewall's queue.
const lossPerMs = 20

// stream is a numbered UDP stream from the client to a sink on the server:
// every datagram carries its sequence number, the sink counts arrivals per
// number, so a test can tell exactly which packets were lost or duplicated.
type stream struct {
	t    *testing.T
	top  *topo.Topology
	conn net.Conn
	sink net.PacketConn

	// sendMu makes a write and its count one step, so that a mark is
	// exact: no datagram numbered mark or above was written before it.
	sendMu   sync.Mutex
	sent     atomic.Uint32 // datagrams sent: sequence numbers 0..sent-1
	sendErrs atomic.Uint32
	stop     atomic.Bool
	sendDone chan struct{}

	mu      sync.Mutex
	arrived []uint16 // arrivals per sequence number
	last    atomic.Int64
	drops0  dropCounters
}

// startStream opens the sink on port and starts sending at lossPerMs.
func startStream(t *testing.T, top *topo.Topology, port int) *stream {
	t.Helper()
	s := &stream{t: t, top: top, sendDone: make(chan struct{})}
	s.sink = listenPacketIn(t, top.Server, "udp4", fmt.Sprintf(":%d", port))
	forceRcvBuf(t, s.sink, 32<<20) // a busy machine must not lose packets in the sink
	c, err := dialIn(top.Client, "udp4", hostPort(top.ServerIP4, port), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s.conn = c
	s.drops0 = readDrops(t, top)
	s.last.Store(time.Now().UnixNano())
	go s.receive()
	go s.send()
	return s
}

func (s *stream) receive() {
	buf := make([]byte, 64)
	for {
		n, _, err := s.sink.ReadFrom(buf)
		if err != nil {
			return
		}
		s.last.Store(time.Now().UnixNano())
		if n < 4 {
			continue
		}
		seq := binary.BigEndian.Uint32(buf)
		if seq >= 1<<26 {
			continue // not one of ours
		}
		s.mu.Lock()
		for int(seq) >= len(s.arrived) {
			s.arrived = append(s.arrived, make([]uint16, 1<<16)...)
		}
		s.arrived[seq]++
		s.mu.Unlock()
	}
}

// send keeps the sent count at lossPerMs times the milliseconds elapsed,
// catching up at most four milliseconds' worth at a time after a stall (a
// busy machine must not turn a late wake-up into a burst that overruns a
// device backlog). A datagram whose write fails was not sent; its number
// is used again.
func (s *stream) send() {
	defer close(s.sendDone)
	buf := make([]byte, 32)
	start := time.Now()
	for !s.stop.Load() {
		target := uint32(time.Since(start)/time.Millisecond+1) * lossPerMs
		for n := 0; s.sent.Load() < target && n < 4*lossPerMs; n++ {
			if !s.sendOne(buf) {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *stream) sendOne(buf []byte) bool {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	binary.BigEndian.PutUint32(buf, s.sent.Load())
	if _, err := s.conn.Write(buf); err != nil {
		s.sendErrs.Add(1)
		return false
	}
	s.sent.Add(1)
	return true
}

// mark is the number of datagrams sent so far: every one numbered below
// was written before the call, every one numbered mark or above after it.
func (s *stream) mark() uint32 {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.sent.Load()
}

// run lets the stream flow for d.
func (s *stream) run(d time.Duration) { time.Sleep(d) }

// finish stops sending, waits until the sink has been quiet for 300ms (at
// most 10s) and returns the number sent.
func (s *stream) finish() uint32 {
	s.t.Helper()
	s.stop.Store(true)
	<-s.sendDone
	deadline := time.Now().Add(10 * time.Second)
	for time.Since(time.Unix(0, s.last.Load())) < 300*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.sink.Close()
	return s.sent.Load()
}

// count returns, for sequence numbers from..to-1, how many never arrived
// (and the first few of them) and how many arrived more than once.
func (s *stream) count(from, to uint32) (lost int, first []uint32, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq := from; seq < to; seq++ {
		n := uint16(0)
		if int(seq) < len(s.arrived) {
			n = s.arrived[seq]
		}
		switch {
		case n == 0:
			lost++
			if len(first) < 8 {
				first = append(first, seq)
			}
		case n > 1:
			dups++
		}
	}
	return lost, first, dups
}

// expectAll fails the test unless every datagram from..to-1 arrived exactly
// once. The message names the drops outside qguard's reach (sink socket,
// device backlogs) so a failure says where to look.
func (s *stream) expectAll(from, to uint32, what string) {
	s.t.Helper()
	lost, first, dups := s.count(from, to)
	if lost == 0 && dups == 0 {
		return
	}
	d := readDrops(s.t, s.top).sub(s.drops0)
	s.t.Errorf("%s: %d of %d datagrams (numbers %d..%d) lost, first %v; %d arrived twice; send errors %d; "+
		"meanwhile the sink socket dropped %d (UDP RcvbufErrors) and device backlogs %d (softnet_stat, all CPUs)",
		what, lost, to-from, from, to-1, first, dups, s.sendErrs.Load(), d.sinkRcvbuf, d.softnet)
}

// dropCounters are the losses a test's own machinery can cause.
type dropCounters struct {
	sinkRcvbuf uint64 // the server namespace's UDP RcvbufErrors
	softnet    uint64 // /proc/net/softnet_stat "dropped", summed over CPUs (machine-wide)
}

func (a dropCounters) sub(b dropCounters) dropCounters {
	return dropCounters{a.sinkRcvbuf - b.sinkRcvbuf, a.softnet - b.softnet}
}

func readDrops(t *testing.T, top *topo.Topology) dropCounters {
	t.Helper()
	var d dropCounters
	if out, err := top.Server.Output("cat", "/proc/net/snmp"); err == nil {
		d.sinkRcvbuf = topo.SNMPField(out, "Udp:", "RcvbufErrors")
	}
	if b, err := os.ReadFile("/proc/net/softnet_stat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				n, _ := strconv.ParseUint(f[1], 16, 64)
				d.softnet += n
			}
		}
	}
	return d
}

// queued is the number of packets the daemon received from its queues.
func (d *daemon) queued() uint64 {
	d.t.Helper()
	var n uint64
	for _, q := range d.status().Queues {
		n += q.Packets
	}
	return n
}

// watchPending samples the kernel queue's backlog over the control socket
// every 50ms until the returned function is called, which returns the
// largest seen (a diagnostic for counts that do not add up).
func (d *daemon) watchPending() func() uint64 {
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			r, err := service.Call(d.control, "status", time.Second)
			if err != nil || !r.OK || r.Status == nil {
				continue
			}
			for _, q := range r.Status.Queues {
				if q.KernelPending > peak.Load() {
					peak.Store(q.KernelPending)
				}
			}
		}
	}()
	var once sync.Once
	return func() uint64 {
		once.Do(func() { close(stop); <-done })
		return peak.Load()
	}
}

// stoppedPackets is the final packet count the daemon logged at a clean
// stop.
func (d *daemon) stoppedPackets() uint64 {
	d.t.Helper()
	st := jsonLines(d.log.String(), "stopped")
	if len(st) != 1 {
		d.t.Fatalf("%d \"stopped\" lines logged, want 1", len(st))
	}
	n, ok := st[0]["packets"].(float64)
	if !ok {
		d.t.Fatalf("the \"stopped\" line has no packet count: %v", st[0])
	}
	return uint64(n)
}
