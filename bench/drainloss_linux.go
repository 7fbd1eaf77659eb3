package bench

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/queue"
)

// lossCounters is every kernel counter a drain burst's packet can be lost
// in on its way from the generator to the sink, read at one instant; the
// difference of two (lossCounters.sub) names where a short burst went.
type lossCounters struct {
	sent, sink uint64 // generator (burst frames), sink (flood port)
	// The mode's queues: id_sequence (packets queued), queue_dropped (the
	// queue full), user_dropped (the handler's socket full), queue_total
	// (waiting for a verdict).
	queued, qDropped, uDropped, waiting uint64
	backlog                             uint64    // softnet_stat drops, machine-wide
	links                               [3]uint64 // rx+tx drops of the client's, firewall's, server's links
	ctFailed, ctDrop                    uint64    // firewall conntrack insert_failed, drop (0 without conntrack)
	unresolved                          uint64    // arp_cache + ndisc_cache unresolved_discards
}

// lossCounters reads them for run r; the queue figures come from st.
func (e *env) lossCounters(r *modeRun, st *nfqStatFile) (c lossCounters, err error) {
	c.sent = e.gen.sent.n.Load()
	c.sink, _ = e.srv.counts()
	qs, err := st.read()
	if err != nil {
		return c, err
	}
	count := max(r.m.Queues, 1)
	c.qDropped, c.uDropped, c.queued = nfqTotals(qs, r.q, count)
	for _, q := range qs {
		if int(q.Queue) >= int(r.q) && int(q.Queue) < int(r.q)+count {
			c.waiting += uint64(q.QueueTotal)
		}
	}
	if s, err := readNetFile(e.t.Firewall, "softnet_stat"); err == nil {
		c.backlog = sumColumn(s, 1)
	}
	for i, ns := range []topo.NS{e.t.Client, e.t.Firewall, e.t.Server} {
		c.links[i] = linkDrops(ns)
	}
	if s, err := readNetFile(e.t.Firewall, "stat/nf_conntrack"); err == nil {
		c.ctFailed, c.ctDrop = statColumn(s, "insert_failed"), statColumn(s, "drop")
	}
	for _, name := range []string{"stat/arp_cache", "stat/ndisc_cache"} {
		if s, err := readNetFile(e.t.Firewall, name); err == nil {
			c.unresolved += statColumn(s, "unresolved_discards")
		}
	}
	return c, nil
}

// sub is what happened between a and c.
func (c lossCounters) sub(a lossCounters) lossCounters {
	d := lossCounters{
		sent: c.sent - a.sent, sink: c.sink - a.sink, queued: c.queued - a.queued,
		qDropped: c.qDropped - a.qDropped, uDropped: c.uDropped - a.uDropped, waiting: c.waiting,
		backlog: c.backlog - a.backlog, ctFailed: c.ctFailed - a.ctFailed, ctDrop: c.ctDrop - a.ctDrop,
		unresolved: c.unresolved - a.unresolved,
	}
	for i := range d.links {
		d.links[i] = c.links[i] - a.links[i]
	}
	return d
}

// foreign is the packets other than the burst's that the queues took in
// (queued) or turned away (full), given that the burst's own frames were
// sent: the latency probe's late echoes are the only other UDP through
// the firewall. Every sent frame is counted once by the queue (queued or
// dropped) unless it was lost before it, on the client's link or in a
// backlog.
func (d lossCounters) foreign() uint64 {
	seen := d.queued + d.qDropped + d.uDropped
	if seen <= d.sent {
		return 0
	}
	return seen - d.sent
}

func (d lossCounters) String() string {
	return fmt.Sprintf("sent %d, sink %d; queues: queued %d (%d not the burst's), queue_dropped %d, user_dropped %d, "+
		"waiting %d; backlog drops %d; link drops client %d, firewall %d, server %d; "+
		"conntrack insert_failed %d, drop %d; neighbour unresolved_discards %d",
		d.sent, d.sink, d.queued, d.foreign(), d.qDropped, d.uDropped, d.waiting, d.backlog,
		d.links[0], d.links[1], d.links[2], d.ctFailed, d.ctDrop, d.unresolved)
}

// linkDrops sums the rx and tx drop columns of /proc/net/dev in ns.
func linkDrops(ns topo.NS) uint64 {
	s, err := readNetFile(ns, "dev")
	if err != nil {
		return 0
	}
	return sumDevDrops(s)
}

// sumDevDrops adds up the rx and tx drop columns of a /proc/net/dev text.
func sumDevDrops(s string) uint64 {
	var n uint64
	for _, line := range strings.Split(s, "\n") {
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		// rx: bytes packets errs drop fifo frame compressed multicast;
		// tx: bytes packets errs drop ...
		f := strings.Fields(rest)
		if len(f) < 12 {
			continue
		}
		for _, i := range []int{3, 11} {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			n += v
		}
	}
	return n
}

// sumColumn adds up column i (hex) of a headerless per-CPU table
// (softnet_stat).
func sumColumn(s string, i int) uint64 {
	var n uint64
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) > i {
			v, _ := strconv.ParseUint(f[i], 16, 64)
			n += v
		}
	}
	return n
}

// statColumn adds up the named column of a /proc/net/stat table (a
// header line of names, then a row of hex numbers per CPU).
func statColumn(s, name string) uint64 {
	lines := strings.Split(s, "\n")
	if len(lines) == 0 {
		return 0
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == name {
			col = i
		}
	}
	if col < 0 {
		return 0
	}
	return sumColumn(strings.Join(lines[1:], "\n"), col)
}

// read returns every queue's counters now.
func (s *nfqStatFile) read() ([]queue.KernelStats, error) {
	n, err := s.readRaw()
	if err != nil {
		return nil, err
	}
	st, err := queue.ParseProcQueues(s.buf[:n])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDrain, err)
	}
	return st, nil
}
