package bench

import (
	"context"
	"fmt"
	"slices"

	"github.com/qguard/qguard/queue"
)

// AllModes lists every mode for the given configuration, in report order.
//
// Adding a mode is adding a Mode here: its descriptive fields, a start
// function (a constructor below, or your own startFunc) and, when the usual
// phases do not fit, a measure function (see measureForward and
// measureFlood).
func AllModes(c *Config) []Mode {
	o := c.withDefaults()
	pb := o.PeerBatch
	main := mainBatch(o.Batches)
	peer := func(name string, f Family, start startFunc, drain bool, about string) Mode {
		return Mode{Name: name, Group: GroupPeer, Family: f, Traffic: UDP64, Queues: 1, start: start, steer: true, drain: drain, cost: true, About: about}
	}
	lib := func(name string, queues int, start startFunc, about string) Mode {
		return Mode{Name: name, Group: GroupQGuard, Family: FamilyLibrary, Traffic: UDP64, Queues: queues, start: start, steer: true, drain: true,
			cost: queues == 1, About: about}
	}
	ms := []Mode{
		{Name: "kernel", Group: GroupLimit, Family: FamilyKernel, Traffic: UDP64, cost: true, About: "kernel forwarding, no queue (the limit)"},
		{Name: "kernel-conntrack", Group: GroupLimit, Family: FamilyKernel, Traffic: UDP64, cost: true, measure: withConntrack(measureForward),
			About: "kernel forwarding with connection tracking on, as qguard's table has it for offload or kernel-first (a stateful firewall's floor)"},
		peer("c-nfq", FamilyC, cPeer(pb), true, fmt.Sprintf("C on libnetfilter_queue, nfq_set_verdict_batch every %d or when dry", pb)),
		peer("c-nfq-perpkt", FamilyC, cPeer(1), true, "C on libnetfilter_queue, nfq_set_verdict per packet"),
	}
	if main != pb {
		// C at qguard's batch size too: the batch size alone moves the
		// figures, and the comparison should not hide behind it.
		ms = append(ms, peer(fmt.Sprintf("c-nfq-batch%d", main), FamilyC, cPeer(main), true,
			fmt.Sprintf("C on libnetfilter_queue, nfq_set_verdict_batch every %d or when dry (qguard's batch size)", main)))
	}
	// go-nfqueue keeps its README's 255-packet queue: too short to time a
	// drain against the resume, and handler-bound in the flood, whose rate
	// is then its capacity.
	ms = append(ms,
		peer("go-nfqueue", FamilyGo, goPeer(1), false, "go-nfqueue v2 as its README shows (SetVerdict per packet)"),
		peer("go-nfqueue-batch", FamilyGo, goPeer(pb), false, fmt.Sprintf("go-nfqueue v2, SetVerdictBatch every %d or 1ms", pb)),
		lib("qguard-perpkt", 1, qguardLib(queue.PerPacket, 0, libAccept), "qguard, one verdict message per packet, one sendmsg each"),
		lib("qguard-vectored", 1, qguardLib(queue.Vectored, 0, libAccept), "qguard, per-packet verdict messages, many in one sendmsg"),
	)
	for _, b := range o.Batches {
		ms = append(ms, lib(fmt.Sprintf("qguard-batch%d", b), 1, qguardLib(queue.Batch, b, libAccept), fmt.Sprintf("qguard, batch verdicts, batch size %d", b)))
	}
	ms = append(ms,
		lib(fmt.Sprintf("qguard-fanout%d", o.FanoutQueues), o.FanoutQueues, qguardLib(queue.Batch, main, libAccept),
			fmt.Sprintf("qguard, %d queues (--queue-balance), one thread each", o.FanoutQueues)),
		lib(fmt.Sprintf("qguard-policy%d", o.PolicyRules), 1, qguardLib(queue.Batch, main, libPolicy),
			fmt.Sprintf("qguard engine's handler (internal/engine, offline) in the library peer, %d-rule policy, all accepted", o.PolicyRules)),
	)
	// The daemon's table turns connection tracking on for flow offload,
	// kernel-first or flow records (observe mode runs without); this mode
	// tells its cost from the daemon's own.
	ct := lib("qguard-conntrack", 1, qguardLib(queue.Batch, main, libAccept),
		fmt.Sprintf("qguard, batch verdicts, batch size %d, connection tracking on (as the daemon's table has it for offload or kernel-first)", main))
	ct.measure, ct.drain = withConntrack(measureForward), false
	ms = append(ms, ct)
	ms = append(ms, daemonModes(&o, main)...)
	// Traffic variants for the modes that anchor the comparison.
	for _, base := range []string{"kernel", "c-nfq", "go-nfqueue", fmt.Sprintf("qguard-batch%d", main), "daemon-observe"} {
		i := slices.IndexFunc(ms, func(m Mode) bool { return m.Name == base })
		if i < 0 {
			continue
		}
		ms = append(ms, ms[i].variant(UDPMTU, ":mtu"))
		ms = append(ms, tcpVariants(ms[i], base == fmt.Sprintf("qguard-batch%d", main))...)
	}
	if i := slices.IndexFunc(ms, func(m Mode) bool { return m.Name == "daemon-kfirst" }); i >= 0 {
		// Kernel-first decides the connections' rules in the kernel: no
		// packet of theirs needs the queue.
		ms = append(ms, tcpVariants(ms[i], false)[1])
	}
	ms = append(ms,
		Mode{Name: "flood-xdp", Group: GroupFlood, Family: FamilyLibrary, Traffic: Flood, start: startXDPProbe, measure: measureFlood(floodXDP),
			About: "blocked-source flood dropped by qguard's XDP program"},
		Mode{Name: "flood-nftset", Group: GroupFlood, Family: FamilyKernel, Traffic: Flood, measure: measureFlood(floodNFTSet),
			About: "blocked-source flood dropped by an nftables set lookup"},
		Mode{Name: "flood-queue", Group: GroupFlood, Family: FamilyLibrary, Traffic: Flood, Queues: 1, start: qguardLib(queue.Batch, main, libDrop), steer: true,
			measure: measureFlood(floodQueue), About: "blocked-source flood, qguard's queue decides each packet (drop)"},
	)
	return ms
}

// tcpVariants are m's TCP stream and short-connection variants; nogso
// adds the stream without GSO, every super-packet segmented before it is
// queued (what the bench measured before the streams asked for GSO).
func tcpVariants(m Mode, nogso bool) []Mode {
	stream, conn := m.variant(TCP, ":tcp"), m.variant(Conn, ":conn")
	stream.measure, conn.measure = measureStream, measureConn
	switch {
	case m.Group == GroupDaemon:
		stream.About += " (queue.gso, its default)"
		conn.About += " (queue.gso, its default)"
	case m.start != nil:
		stream.About += "; GSO super-packets queued whole"
		conn.About += "; GSO super-packets queued whole"
	}
	out := []Mode{stream, conn}
	if nogso {
		seg := m.variant(TCP, ":tcp-nogso")
		seg.measure, seg.gso = measureStream, false
		seg.About += "; no GSO: the kernel segments every super-packet before queueing it"
		out = append(out, seg)
	}
	return out
}

// daemonModes are `qguard run` with a configuration file and its own rules.
func daemonModes(o *Config, batch int) []Mode {
	d := func(name string, spec daemonSpec, drain bool, about string) Mode {
		spec.batch = batch
		return Mode{Name: name, Group: GroupDaemon, Family: FamilyDaemon, Traffic: UDP64, Queues: 1, start: daemon(spec),
			drain: drain, cost: true, About: about}
	}
	n := o.PolicyRules
	return []Mode{
		d("daemon-observe", daemonSpec{mode: "queue-all"}, true, "qguard run, observe: queue-all, no rule, default accept"),
		d(fmt.Sprintf("daemon-policy%d", n), daemonSpec{mode: "queue-all", rules: n}, true,
			fmt.Sprintf("qguard run, queue-all, %d-rule L3/L4 policy, all accepted", n)),
		d("daemon-l7", daemonSpec{mode: "queue-all", rules: n, l7: true, l7Flood: true}, true,
			fmt.Sprintf("qguard run, queue-all, %d L3/L4 rules + DNS/TLS/HTTP/payload rules (a payload rule reads every flood packet)", n)),
		d("daemon-offload", daemonSpec{mode: "queue-all", offload: true}, false,
			"qguard run, flow offload: each UDP flow decided once, the kernel forwards the rest"),
		d("daemon-kfirst", daemonSpec{mode: "kernel-first", rules: n, l7: true}, false,
			fmt.Sprintf("qguard run, kernel-first, %d L3/L4 rules + DNS/TLS/HTTP rules: no L7 rule can match the flood", n)),
		// Each flood flow crosses the queue until user space has decided
		// it; then the connection mark hands it to the kernel, so a burst
		// of established flows is not queued: no drain phase.
		d("daemon-kfirst-l7", daemonSpec{mode: "kernel-first", rules: n, l7: true, l7Flood: true}, false,
			"qguard run, kernel-first, the same + a payload rule on the flood port: its flows need the queue"),
	}
}

// mainBatch is the batch size used where one batch size stands for qguard.
func mainBatch(b []int) int {
	if slices.Contains(b, queue.DefaultBatchSize) {
		return queue.DefaultBatchSize
	}
	return b[len(b)/2]
}

// withConntrack runs measure with connection tracking on in the firewall.
func withConntrack(measure measureFunc) measureFunc {
	return func(ctx context.Context, e *env, r *modeRun) (s Sample, err error) {
		if err := e.steer.addConntrack(); err != nil {
			return s, err
		}
		return measure(ctx, e, r) // runMode removes the table

	}
}
