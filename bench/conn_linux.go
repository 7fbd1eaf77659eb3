package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// connMessage is the size of a connection's request and of its reply.
const connMessage = 64

// connTimeout bounds one connection, connect to close: a connection not
// done by then counts as failed.
const connTimeout = 2 * time.Second

// connLoad is many short TCP connections through the firewall, each
// connect, a request, a reply, and the server's close, back to back from
// workers in the client namespace to workers in the server namespace: the
// handshake and first data of every flow cross the firewall, which is
// where a queue that decides flows does its work.
type connLoad struct {
	ln     net.Listener
	done   counter // connections that completed
	failed counter // connections that did not (refused, timed out, short reply)
	stop   atomic.Bool
	// clients and servers are waited for in turn: servers answer until
	// the last client is done.
	clients, servers sync.WaitGroup
}

// startConnLoad runs workers clients, cycling over srcs, on gen's threads
// and as many servers on sink's until close.
func startConnLoad(client, server topo.NS, srcs []netip.Addr, dst4, dst6 netip.Addr, workers int, gen, sink thread) (*connLoad, error) {
	l := &connLoad{}
	var err error
	if l.ln, err = listenTCP(server, portConn); err != nil {
		return nil, fmt.Errorf("start connection server: %w", err)
	}
	for range workers {
		sink.loop(&l.servers, l.serve)
	}
	for i := range workers {
		src := srcs[i%len(srcs)]
		dst := dst4
		if src.Is6() {
			dst = dst6
		}
		gen.loop(&l.clients, func() {
			// The worker's thread stays in the client namespace for its
			// life: every socket it opens is the client's.
			_ = client.Do(func() error {
				l.connect(src, dst)
				return nil
			})
		})
	}
	return l, nil
}

// connect opens connections from src to dst one after the other until stop.
func (l *connLoad) connect(src, dst netip.Addr) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: connTimeout}
	to := netip.AddrPortFrom(dst, portConn).String()
	req := make([]byte, connMessage)
	reply := make([]byte, connMessage+1)
	for !l.stop.Load() {
		if l.once(&d, to, req, reply) {
			l.done.n.Add(1)
		} else if !l.stop.Load() {
			l.failed.n.Add(1)
		}
	}
}

// once makes one connection and reports whether it completed: the whole
// reply read and then the server's close.
func (l *connLoad) once(d *net.Dialer, to string, req, reply []byte) bool {
	c, err := d.Dial("tcp", to)
	if err != nil {
		// A refused or timed-out connect: wait a little, so a firewall
		// that drops does not turn the client into a SYN flood.
		time.Sleep(10 * time.Millisecond)
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	if _, err := c.Write(req); err != nil {
		return false
	}
	n, err := io.ReadFull(c, reply[:connMessage])
	if err != nil || n != connMessage {
		return false
	}
	// The server closes after its reply: EOF, and nothing more.
	m, err := c.Read(reply)
	return m == 0 && err == io.EOF
}

// serve answers connections until the listener closes.
func (l *connLoad) serve() {
	buf := make([]byte, connMessage)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(connTimeout))
		if _, err := io.ReadFull(c, buf); err == nil {
			_, _ = c.Write(buf)
		}
		_ = c.Close()
	}
}

// counts returns the connections completed and failed so far.
func (l *connLoad) counts() (done, failed uint64) { return l.done.n.Load(), l.failed.n.Load() }

// close stops the clients after their current connection and the servers,
// and waits for them.
func (l *connLoad) close() {
	l.stop.Store(true)
	l.clients.Wait()
	_ = l.ln.Close()
	l.servers.Wait()
}

// measureConn measures a short-connection mode: the connections completed
// (and failed) over the window, and what the queue and the handler did
// meanwhile.
func measureConn(ctx context.Context, e *env, r *modeRun) (Sample, error) {
	r.progress("connections")
	l, err := startConnLoad(e.t.Client, e.t.Server, e.srcs, e.t.ServerIP4, e.t.ServerIP6, e.cfg.ConnWorkers,
		e.genThread(), e.thread(*e.cfg.SinkCPU))
	if err != nil {
		return Sample{}, err
	}
	defer l.close()
	s, done, failed, err := e.window(ctx, r, &generator{}, nil, l.counts) // no UDP generator: its counters stay 0
	if err != nil {
		return s, err
	}
	s.Conns, s.ConnFailures = done, failed
	if done == 0 {
		return s, fmt.Errorf("measure %s: no connection completed in %.1fs (%d failed)", r.m.Name, s.Seconds, failed)
	}
	return s, nil
}
