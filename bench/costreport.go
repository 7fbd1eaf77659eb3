package bench

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
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
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\tfw ns/pkt\tspread\thandler ns\tvs kernel\tpaired vs kernel\tvs C\tqueued\tdelivered\t")
		for _, x := range r.Results {
			l := costAt(x.Cost, rate)
			if l == nil {
				continue
			}
			deliv := "-"
			if l.SentPPS.Median > 0 {
				deliv = fmt.Sprintf("%.0f%%", 100*l.DeliveredPPS.Median/l.SentPPS.Median)
			}
			paired := "-"
			if l.PairedVsKernel.Median > 0 && r.Runs > 1 {
				paired = fmt.Sprintf("%.2f..%.2fx", l.PairedVsKernel.Min, l.PairedVsKernel.Max)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", x.Mode, dash(l.FirewallNS.Median, ns), nsSpread(l.FirewallNS),
				dash(l.HandlerNS.Median, ns), ratio(l.VsKernel), paired, ratio(l.VsC), l.Queued, deliv)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, l := range []string{
		"fw ns/pkt: per packet sent, the kernel's work (the generator thread's CPU minus its own sending, calibrated with frames " +
			"dropped on arrival, plus ksoftirqd) and the handler process's CPU; handler ns: its part; vs kernel: over kernel-only " +
			"forwarding's at the same rate (the floor); queued: packets the mode's queues received (id_sequence), summed over runs; " +
			"delivered: reached the sink, of those sent. Method and limits: bench/cost_linux.go.",
	} {
		io.WriteString(w, wrap(l, tableWidth, "  "))
	}
	if len(r.GenFloor) > 0 {
		fmt.Fprint(w, "  generator's own sending:")
		for _, g := range r.GenFloor {
			fmt.Fprintf(w, " %.0f ns/pkt at %s pps;", g.NSPerPacket, num(float64(g.Rate)))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func nsSpread(s Summary) string {
	if s.Min == s.Max {
		return "-"
	}
	return fmt.Sprintf("%.0f..%.0f", s.Min, s.Max)
}

func costAt(ls []LoadResult, rate int) *LoadResult {
	for i := range ls {
		if ls[i].Rate == rate {
			return &ls[i]
		}
	}
	return nil
}
