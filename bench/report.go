package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report as an aligned table with a legend.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "qguard bench  %s  kernel %s  %d CPUs  %s per mode x %d run(s)\n",
		r.Started.Format("2006-01-02 15:04 UTC"), r.Kernel, r.CPUs, r.Duration, r.Runs)
	if r.Generator != "" || r.Sink != "" {
		fmt.Fprintf(w, "generator: %s; sink: %s\n", r.Generator, r.Sink)
	}
	fmt.Fprintf(w, "pinning: %s\nflows: %s\nload average (1 min) before/after: %.2f / %.2f", r.Pinning, r.Flows, r.LoadBefore, r.LoadAfter)
	// The run's own threads raise the load after; only the load before
	// says whether something else was running.
	if r.LoadBefore > float64(r.CPUs)/2 {
		fmt.Fprint(w, "  (the machine was busy before the run: figures are skewed)")
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\ttraffic\tsent pps\tdelivered pps\tspread\tMbit/s\tq_drop\tu_drop\tsink_drop\tns/pkt\tpps/CPU\tuser\tlat p50 us\tlat p99 us\tvs C\tvs kernel\tdrain pps\tdrain vs C\tdrain vs go\t")
	for _, x := range r.Results {
		switch {
		case x.Skipped != "":
			fmt.Fprintf(tw, "%s\t%s\tskipped\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", x.Mode, x.Traffic)
			continue
		case x.Error != "":
			fmt.Fprintf(tw, "%s\t%s\tfailed\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", x.Mode, x.Traffic)
			continue
		case x.Traffic == Flood:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s dropped\t%s\t\t%d\t%d\t\t%s\t%s\t\t\t\t%s\t\t", x.Mode, x.Traffic,
				num(x.SentPPS.Median), num(x.DroppedPPS.Median), spread(x.DroppedPPS), x.QueueDropped, x.UserDropped,
				nsPkt(x.SystemCPUPkt.Median), capacity(x.SystemCPUPkt.Median), ratio(x.VsQueue, " q"))
			fmt.Fprint(tw, "\t\t\t\n")
			continue
		}
		sent, deliv, sp := num(x.SentPPS.Median), num(x.DeliveredPPS.Median), spread(x.DeliveredPPS)
		if x.Traffic == TCP {
			sent, deliv, sp = "-", "-", spread(x.DeliveredMbps)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			x.Mode, x.Traffic, sent, deliv, sp, x.DeliveredMbps.Median, x.QueueDropped, x.UserDropped, x.SinkDrops,
			nsPkt(x.CPUPerPacket.Median), capacity(x.CPUPerPacket.Median), share(x.UserShare.Median), us(x.LatencyP50Us.Median), us(x.LatencyP99Us.Median),
			ratio(x.VsC, ""), ratio(x.VsKernel, ""), drainPPS(x.DrainPPS.Median), ratio(x.DrainVsC, ""), ratio(x.DrainVsGo, ""))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nns/pkt: handler CPU time per handled packet (flood rows: firewall CPU per dropped packet:\nall CPUs' irq+softirq time plus the handler's CPU; /proc/stat has 10ms resolution, so tiny costs read as 0).")
	fmt.Fprintln(w, "pps/CPU: 1s / ns/pkt, the packets/s one CPU would handle at that cost: it holds when the generator, not the handler, was the limit.")
	fmt.Fprintln(w, "user: the handler's share of that CPU time spent in user space (the rest is the kernel: receive, verdict, reinjection, forwarding).")
	fmt.Fprintln(w, "spread: min..max of delivered pps (Mbit/s for tcp) over runs; q_drop/u_drop: kernel queue_dropped/user_dropped;\nsink_drop: sink socket overruns (UDP RcvbufErrors in the server namespace; always 0 with the nftables sink); drops summed over runs.")
	fmt.Fprintln(w, "vs C / vs kernel: delivered pps (Mbit/s for tcp) over c-nfq's and kernel's for the same traffic; flood rows: drop rate over\nflood-queue's (packets the queue handler itself dropped; q_drop are those the full queue dropped before it).")
	fmt.Fprintln(w, "drain pps: the steady rate (from 90% to 10% left) the handler emptied a full queue (bursts queued while it was stopped), the generator idle:\nthe handler's capacity, where the flood above can be capped by the generator's CPU. drain vs C: over c-nfq's drain;\ndrain vs go: over go-nfqueue's delivered pps when its full queue or socket dropped packets (it was the limit, so that\nis its capacity; its README's 255-packet queue is too short to time a drain).")
	if r.Runs > 1 {
		fmt.Fprintln(w, "\nPaired with c-nfq run by run (runs interleave, so each pair was measured seconds apart): min / median / max")
		for _, x := range r.Results {
			// c-nfq's own rows are the reference: always 1.00x.
			if !x.Ran() || x.PairedVsC.Median == 0 || x.Mode == "c-nfq" || strings.HasPrefix(x.Mode, "c-nfq:") {
				continue
			}
			fmt.Fprintf(w, "  %-20s delivered %s", x.Mode, triple(x.PairedVsC))
			if x.PairedDrainVsC.Median > 0 {
				fmt.Fprintf(w, "   drain %s", triple(x.PairedDrainVsC))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
	for _, x := range r.Results {
		switch {
		case x.Skipped != "":
			fmt.Fprintf(w, "  %-20s skipped: %s\n", x.Mode, x.Skipped)
		case x.Error != "":
			fmt.Fprintf(w, "  %-20s FAILED: %s\n", x.Mode, x.Error)
		default:
			fmt.Fprintf(w, "  %-20s %s [%s]\n", x.Mode, x.About, x.Pinning)
		}
	}
	return nil
}

// WriteJSON writes the report, samples included, as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// LoadJSON reads a report written by SaveJSON and recomputes its summaries
// and ratios from its samples, so a saved run can be printed again, by a
// newer qguard too.
func LoadJSON(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JSON report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read JSON report %s: %w", path, err)
	}
	r.Recompute()
	return &r, nil
}

// SaveJSON writes the report to a file.
func (r *Report) SaveJSON(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write JSON report %s: %w", path, err)
	}
	return f.Close()
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func spread(s Summary) string {
	if s.Min == s.Max {
		return "-"
	}
	return num(s.Min) + ".." + num(s.Max)
}

func nsPkt(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// capacity is what one CPU could handle at the measured cost per packet:
// a figure that holds when the generator, not the handler, limited the run.
func capacity(nsPerPkt float64) string {
	if nsPerPkt == 0 {
		return "-"
	}
	return num(1e9 / nsPerPkt)
}

func share(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", v*100)
}

func triple(s Summary) string {
	return fmt.Sprintf("%.2fx / %.2fx / %.2fx", s.Min, s.Median, s.Max)
}

func drainPPS(v float64) string {
	if v == 0 {
		return "-"
	}
	return num(v)
}

func us(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(v float64, suffix string) string {
	if v == 0 {
		return "-"
	}
	return strings.TrimSpace(fmt.Sprintf("%.2fx%s", v, suffix))
}
