package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// Ports of the TCP loads, in the server namespace.
const (
	portStream = 9003 // TCP stream sink
	portConn   = 9004 // short connections
)

// streamChunk is what a stream writer hands the kernel per write: large, so
// the socket builds full GSO super-packets as a bulk sender's does.
const streamChunk = 256 << 10

// tcpStream is bulk TCP through the firewall as applications send it: Go
// net connections from the client namespace to a reader in the server
// namespace, so the kernel segments (or leaves to GSO) what it would for
// any program.
type tcpStream struct {
	ln   net.Listener
	sent counter // bytes written by the client
	read counter // bytes read by the server
	stop atomic.Bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	cs   []net.Conn // both ends, closed on stop
}

// listenTCP listens on port of every address in ns.
func listenTCP(ns topo.NS, port int) (ln net.Listener, err error) {
	err = ns.Do(func() error {
		ln, err = net.Listen("tcp", net.JoinHostPort("::", strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on TCP port %d in %s: %w", port, ns.Name, err)
	}
	return ln, nil
}

// startTCPStream opens one stream per source to dst (the server address of
// the source's family) and runs writers on gen's and readers on sink's
// threads until close.
func startTCPStream(client, server topo.NS, srcs []netip.Addr, dst4, dst6 netip.Addr, gen, sink thread) (s *tcpStream, err error) {
	s = &tcpStream{}
	if s.ln, err = listenTCP(server, portStream); err != nil {
		return nil, fmt.Errorf("start TCP stream sink: %w", err)
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	accepted := make(chan error, 1)
	go s.accept(len(srcs), sink, accepted)
	for _, src := range srcs {
		c, err := dialFrom(client, src, dst4, dst6, portStream)
		if err != nil {
			return s, fmt.Errorf("start TCP stream: %w", err)
		}
		s.run(c, gen, s.write)
	}
	select {
	case err := <-accepted:
		if err != nil {
			return s, fmt.Errorf("start TCP stream: %w", err)
		}
	case <-time.After(5 * time.Second):
		return s, fmt.Errorf("start TCP stream: %w: the sink accepted too few of %d streams in 5s", os.ErrDeadlineExceeded, len(srcs))
	}
	return s, nil
}

// dialFrom connects from src, in the client namespace, to the server
// address of src's family.
func dialFrom(client topo.NS, src, dst4, dst6 netip.Addr, port int) (net.Conn, error) {
	dst := dst4
	if src.Is6() {
		dst = dst6
	}
	var c net.Conn
	err := client.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 3 * time.Second}
		var err error
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s -> %s port %d in %s: %w", src, dst, port, client.Name, err)
	}
	return c, nil
}

// run starts body(c) on a thread placed as th says, unless the stream was
// closed meanwhile: then c is closed at once.
func (s *tcpStream) run(c net.Conn, th thread, body func(net.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop.Load() {
		_ = c.Close()
		return
	}
	s.cs = append(s.cs, c)
	th.loop(&s.wg, func() { body(c) })
}

// accept takes n streams and starts a reader for each; it reports on done
// once all n came, or the listener failed.
func (s *tcpStream) accept(n int, th thread, done chan<- error) {
	for i := range n {
		c, err := s.ln.Accept()
		if err != nil {
			done <- fmt.Errorf("accept stream %d of %d: %w", i+1, n, err)
			return
		}
		s.run(c, th, s.drain)
	}
	done <- nil
}

func (s *tcpStream) write(c net.Conn) {
	buf := make([]byte, streamChunk)
	for !s.stop.Load() {
		n, err := c.Write(buf)
		s.sent.n.Add(uint64(n))
		if err != nil {
			return
		}
	}
}

func (s *tcpStream) drain(c net.Conn) {
	buf := make([]byte, streamChunk)
	for {
		n, err := c.Read(buf)
		s.read.n.Add(uint64(n))
		if err != nil {
			return
		}
	}
}

// bytes returns what was written and read so far.
func (s *tcpStream) bytes() (sent, read uint64) { return s.sent.n.Load(), s.read.n.Load() }

// close stops the writers, closes every connection and the listener, and
// waits for the threads.
func (s *tcpStream) close() {
	if s.ln != nil {
		_ = s.ln.Close()
	}
	s.mu.Lock()
	s.stop.Store(true)
	for _, c := range s.cs {
		// Unblocks a writer stuck on a full window and a reader on an
		// idle stream.
		_ = c.Close()
	}
	s.cs = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// measureStream measures a TCP stream mode: the bytes the sink read over
// the window, and what the queue and the handler did meanwhile.
func measureStream(ctx context.Context, e *env, r *modeRun) (Sample, error) {
	r.progress("throughput")
	var srcs []netip.Addr
	for i := range e.cfg.TCPConns {
		srcs = append(srcs, e.srcs[i%len(e.srcs)])
	}
	st, err := startTCPStream(e.t.Client, e.t.Server, srcs, e.t.ServerIP4, e.t.ServerIP6, e.genThread(), e.thread(*e.cfg.SinkCPU))
	if err != nil {
		return Sample{}, err
	}
	defer st.close()
	rt0 := tcpRetrans(e.t.Client)
	s, sent, read, err := e.window(ctx, r, &generator{}, nil, st.bytes) // the UDP generator does not run: its counters stay 0
	if err != nil {
		return s, err
	}
	s.Sent, s.Delivered, s.DeliveredBytes = sent, 0, read
	if read == 0 {
		// Where the stream stalled: the queue's counters over the window,
		// and the client's retransmissions since the streams started.
		rt1 := tcpRetrans(e.t.Client)
		total, _ := st.bytes()
		return s, fmt.Errorf("measure %s: no TCP byte read in %.1fs (%d written; %d since the streams started); "+
			"queue: %d queued, %d/%d queue/user dropped; the client's TCP since the start: %d segments retransmitted, %d retransmission timeouts",
			r.m.Name, s.Seconds, sent, total, s.Queued, s.QueueDropped, s.UserDropped, rt1[0]-rt0[0], rt1[1]-rt0[1])
	}
	return s, nil
}

// tcpRetrans reads ns's TCP retransmitted segments and retransmission
// timeouts (0 where unreadable: a diagnostic).
func tcpRetrans(ns topo.NS) [2]uint64 {
	var r [2]uint64
	if snmp, err := readNetFile(ns, "snmp"); err == nil {
		r[0] = topo.SNMPField(snmp, "Tcp:", "RetransSegs")
	}
	if netstat, err := readNetFile(ns, "netstat"); err == nil {
		r[1] = topo.SNMPField(netstat, "TcpExt:", "TCPTimeouts")
	}
	return r
}

// window measures the counters of run r (see snap: generator g, dropped)
// and, when counts is set, the load's two counts over the measured window,
// after the warm-up.
func (e *env) window(ctx context.Context, r *modeRun, g *generator, dropped func() (uint64, error), counts func() (uint64, uint64)) (s Sample, x, y uint64, err error) {
	if counts == nil {
		counts = func() (uint64, uint64) { return 0, 0 }
	}
	// after waits d, then reads every counter.
	after := func(d time.Duration) (snapshot, uint64, uint64, error) {
		if !sleepCtx(ctx, d) {
			return snapshot{}, 0, 0, ctx.Err()
		}
		sn, err := e.snap(r, g, dropped)
		if err != nil {
			return sn, 0, 0, err
		}
		x, y := counts()
		return sn, x, y, nil
	}
	a, x0, y0, err := after(e.cfg.Warmup)
	if err != nil {
		return s, 0, 0, err
	}
	b, x1, y1, err := after(e.cfg.Duration)
	if err != nil {
		return s, 0, 0, err
	}
	return b.since(a), x1 - x0, y1 - y0, nil
}
