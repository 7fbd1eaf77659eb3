package bench

import (
	"time"
)

// snapshot is every counter a measure reads, at one instant; a phase's
// figures are the difference of two (since).
type snapshot struct {
	at        time.Time
	sent      uint64        // generator: packets (UDP) or bytes (TCP)
	genCPU    time.Duration // the generator's thread while it runs paced (cost phase)
	pkts      uint64        // sink: flood-port packets
	bytes     uint64        // and their UDP payload bytes
	sinkDrops uint64        // sink socket overruns
	// The mode's queues: queue_dropped, user_dropped, id_sequence.
	qDropped, uDropped, queued uint64
	cpu, user, sys             time.Duration // the handler process
	softirqd                   time.Duration // the ksoftirqd threads
	dropped                    uint64        // flood modes: what the firewall dropped
	irq                        time.Duration // flood modes: all CPUs' irq+softirq ticks
}

// snap reads the counters of run r with generator g; dropped, when set,
// reads a flood mode's drop counter.
func (e *env) snap(r *modeRun, g *generator, dropped func() (uint64, error)) (s snapshot, err error) {
	s.sent = g.sent.n.Load()
	if tid := g.tid.Load(); tid != 0 {
		if s.genCPU, err = threadCPU(int(tid)); err != nil {
			return s, err
		}
	}
	s.pkts, s.bytes = e.srv.counts()
	s.at = time.Now()
	if r.h != nil {
		if s.cpu, err = r.h.cpu(); err != nil {
			return s, err
		}
		if s.user, s.sys, err = r.h.userSys(); err != nil {
			return s, err
		}
	}
	if r.m.Queues > 0 {
		st, err := readNFQStats(e.t.Firewall)
		if err != nil {
			return s, err
		}
		s.qDropped, s.uDropped, s.queued = nfqTotals(st, r.q, r.m.Queues)
	}
	if dropped != nil {
		if s.dropped, err = dropped(); err != nil {
			return s, err
		}
		if s.irq, err = softirqCPU(); err != nil {
			return s, err
		}
	}
	s.softirqd = threadsCPU(e.softirqd)
	s.sinkDrops, _ = udpRcvbufErrors(e.t.Server)
	return s, nil
}

// since is what happened between a and b.
func (b snapshot) since(a snapshot) Sample {
	s := Sample{
		Seconds: b.at.Sub(a.at).Seconds(), Sent: b.sent - a.sent, Delivered: b.pkts - a.pkts,
		DeliveredBytes: b.bytes - a.bytes, SinkDrops: b.sinkDrops - a.sinkDrops,
		Queued: b.queued - a.queued, QueueDropped: b.qDropped - a.qDropped, UserDropped: b.uDropped - a.uDropped,
		HandlerCPU: int64(b.cpu - a.cpu), HandlerUser: int64(b.user - a.user), HandlerSys: int64(b.sys - a.sys),
		Dropped: b.dropped - a.dropped,
	}
	if b.irq > 0 {
		s.SystemCPU = int64(b.irq-a.irq) + s.HandlerCPU
	}
	return s
}
