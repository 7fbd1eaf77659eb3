package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/qguard/qguard/queue"
)

// writeCost prints the cost phase, one table per offered rate: the whole
// firewall's CPU per packet and its ratio to kernel-only forwarding.
func (r *Report) writeCost(w io.Writer) error {
	var rates []int
	for _, x := range r.Results {
		for _, l := range x.Cost {
			if !slices.Contains(rates, l.Rate) {
				rates = append(rates, l.Rate)
			}
		}
	}
	if len(rates) == 0 {
		if r.CostSkipped != "" {
			fmt.Fprintf(w, "\nCost at a fixed load: skipped: %s\n", r.CostSkipped)
		}
		return nil
	}
	for _, rate := range rates {
		fmt.Fprintf(w, "\nCost at a fixed load of %s packets/s (64-byte UDP): the whole firewall's CPU per packet\n", num(float64(rate)))
		var rows []Result
		for _, x := range r.Results {
			if costAt(x.Cost, rate) != nil {
				rows = append(rows, x)
			}
		}
		// The spread of fw ns/pkt is the chart's whisker; paired is its
		// ratio's, run by run.
		t := newTable(w, rows, "sent pps", "fw ns/pkt", "handler ns", "vs kernel", "paired", "vs C", "queued", "q/u drop", "delivered")
		for _, x := range rows {
			l := costAt(x.Cost, rate)
			deliv := "-"
			if l.SentPPS.Median > 0 {
				deliv = fmt.Sprintf("%.0f%%", 100*l.DeliveredPPS.Median/l.SentPPS.Median)
			}
			paired := "-"
			if l.PairedVsKernel.Median > 0 && r.Runs > 1 {
				paired = fmt.Sprintf("%s..%sx", digits3(l.PairedVsKernel.Min), digits3(l.PairedVsKernel.Max))
			}
			t.row(x, num(l.SentPPS.Median), dash(l.FirewallNS.Median, ns), dash(l.HandlerNS.Median, ns), ratio(l.VsKernel), paired,
				ratio(l.VsC), compact(l.Queued), compact(l.QueueDropped)+"/"+compact(l.UserDropped), deliv)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	for _, l := range []string{
		"sent pps: the rate the paced generator reached (below the offered rate when its CPU was short: the machine busy); " +
			"fw ns/pkt: per packet sent, the kernel's work (the generator thread's CPU minus its own sending, calibrated with frames " +
			"dropped on arrival, plus ksoftirqd) and the handler process's CPU; handler ns: its part; vs kernel: over kernel-only " +
			"forwarding's at the same rate (the floor), paired: min..max of that ratio run by run; queued: packets the mode's queues received (id_sequence), summed over runs; " +
			"delivered: reached the sink, of those sent. Method and limits: bench/cost_linux.go.",
	} {
		io.WriteString(w, wrap(l, tableWidth, "  "))
	}
	r.writeChecks(w)
	if len(r.GenFloor) > 0 {
		fmt.Fprint(w, "  generator's own sending:")
		for _, g := range r.GenFloor {
			fmt.Fprintf(w, " %.0f ns/pkt at %s pps;", g.NSPerPacket, num(float64(g.Rate)))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func costAt(ls []LoadResult, rate int) *LoadResult {
	for i := range ls {
		if ls[i].Rate == rate {
			return &ls[i]
		}
	}
	return nil
}

// writeChecks prints the comparisons the daemon modes are for, from the
// rows that ran: the daemon against the library at the same load, and
// kernel-first against kernel-only forwarding.
func (r *Report) writeChecks(w io.Writer) {
	find := func(name string) *Result {
		for i := range r.Results {
			if r.Results[i].Mode == name && r.Results[i].Ran() {
				return &r.Results[i]
			}
		}
		return nil
	}
	lib := find(fmt.Sprintf("qguard-batch%d", queue.DefaultBatchSize))
	for i := range r.Results {
		if x := &r.Results[i]; lib == nil && x.Ran() && x.Traffic == UDP64 && strings.HasPrefix(x.Mode, "qguard-batch") {
			lib = x
		}
	}
	kernel, kct := find("kernel"), find("kernel-conntrack")
	obs, kf, kfl7, l7, libct := find("daemon-observe"), find("daemon-kfirst"), find("daemon-kfirst-l7"), find("daemon-l7"), find("qguard-conntrack")
	var lines []string
	costLine := func(what string, a, b *Result) {
		if a == nil || b == nil {
			return
		}
		for _, la := range a.Cost {
			lb := costAt(b.Cost, la.Rate)
			if lb == nil || lb.FirewallNS.Median == 0 {
				continue
			}
			s := fmt.Sprintf("%s at %s pps: firewall CPU %.2fx", what, num(float64(la.Rate)), la.FirewallNS.Median/lb.FirewallNS.Median)
			if p := pairedLoad(a.Samples, b.Samples, la.Rate); r.Runs > 1 && p.Median > 0 {
				s += fmt.Sprintf(" (paired %s..%sx)", digits3(p.Min), digits3(p.Max))
			}
			if la.HandlerNS.Median > 0 && lb.HandlerNS.Median > 0 {
				s += fmt.Sprintf(", handler %.2fx", la.HandlerNS.Median/lb.HandlerNS.Median)
			}
			if a.Queues > 0 {
				s += fmt.Sprintf(", queued %s of %s sent", compact(la.Queued), compact(a.loadSent(la.Rate)))
			}
			lines = append(lines, s)
		}
	}
	if obs != nil && lib != nil {
		costLine("daemon-observe / "+lib.Mode, obs, lib)
	}
	if obs != nil && libct != nil {
		costLine("daemon-observe / qguard-conntrack", obs, libct)
	}
	// Kernel-first keeps per-flow verdicts (a reply follows its flow), so
	// it needs conntrack: kernel-conntrack is its floor and comes first.
	if kf != nil && kct != nil && kct.DeliveredPPS.Median > 0 {
		s := fmt.Sprintf("daemon-kfirst flood: delivered %.2fx kernel-conntrack's (the floor of a per-flow firewall)",
			kf.DeliveredPPS.Median/kct.DeliveredPPS.Median)
		if p := paired(kf.Samples, kct.Samples, func(x Sample) float64 { return x.rate(UDP64) }); r.Runs > 1 && p.Median > 0 {
			s += fmt.Sprintf(" (paired %s..%sx)", digits3(p.Min), digits3(p.Max))
		}
		if kf.VsKernel > 0 {
			s += fmt.Sprintf(", %.2fx kernel-only", kf.VsKernel)
		}
		lines = append(lines, s)
		costLine("daemon-kfirst / kernel-conntrack", kf, kct)
	} else if kf != nil && kernel != nil && kf.VsKernel > 0 {
		lines = append(lines, fmt.Sprintf("daemon-kfirst flood: delivered %.2fx kernel-only", kf.VsKernel))
	}
	if kf != nil && kernel != nil {
		costLine("daemon-kfirst / kernel", kf, kernel)
	}
	if kfl7 != nil && l7 != nil && l7.DeliveredPPS.Median > 0 {
		lines = append(lines, fmt.Sprintf("daemon-kfirst-l7 flood: delivered %.2fx daemon-l7's (the same policy in queue-all)",
			kfl7.DeliveredPPS.Median/l7.DeliveredPPS.Median))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nThe daemon against the library, kernel-first against kernel-conntrack and kernel-only (medians; paired: run by run):")
	for _, l := range lines {
		io.WriteString(w, wrap(l, tableWidth, "    "))
	}
}

// loadSent is what the cost phase sent at rate, over the runs.
func (r *Result) loadSent(rate int) uint64 {
	var n uint64
	for _, s := range r.Samples {
		for _, l := range s.Loads {
			if l.Rate == rate {
				n += l.Sent
			}
		}
	}
	return n
}
