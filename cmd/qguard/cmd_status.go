package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/internal/service"
)

func init() {
	var (
		sock, cfgPath string
		asJSON        bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "print live counters from a running daemon",
		Long: `NAME
    qguard status - show what a running qguard daemon is doing

SYNOPSIS
    qguard status [--control SOCKET | --config FILE] [--json]

DESCRIPTION
    Reads a snapshot of the daemon's counters over its control socket and
    prints them: per queue, packets and verdicts (accept, drop, reject,
    offloaded flows), decisions served from the flow table, flow-table size
    and evictions, the kernel's own queue drops, and the sampled decision
    latency; per policy rule, its hits; the reload history; and whether
    the nftables table is intact: how often someone else changed it, when
    and what last, and how often it was re-installed; and the packets the
    kernel let through without queueing them (queue.fail_open overload);
    and the names DNS answers bound to addresses for dst_name and src_name
    rules (name, address, remaining TTL; the first 1000).

    The same counters are exported to Prometheus at the metrics address
    (see "qguard run --help").

OPTIONS
    --control SOCKET   the daemon's control socket (default
                       /run/qguard/control.sock, or
                       /run/qguard/control-netns-INODE.sock outside the
                       initial network namespace)
    --config FILE      find the socket as the daemon running FILE does
                       (its control.socket)
    --json             print the raw snapshot as JSON

EXIT STATUS
    0 printed; 1 the daemon could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := daemonSocket(sock, cfgPath)
			if err != nil {
				return err
			}
			r, err := service.Call(path, "status", 10*time.Second)
			if err != nil {
				return err
			}
			if !r.OK || r.Status == nil {
				return errors.New("status: " + r.Error)
			}
			if asJSON {
				e := json.NewEncoder(cmd.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(r.Status)
			}
			printStatus(cmd.OutOrStdout(), r.Status)
			return nil
		},
	}
	c.Flags().StringVar(&sock, "control", "", "control socket of the running daemon (default: this network namespace's)")
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "the daemon's configuration file, for its control.socket")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	root.AddCommand(c)
}

func printStatus(out io.Writer, s *engine.Stats) {
	fmt.Fprintf(out, "qguard %s, up %s, rules installed: %v", s.Version,
		time.Since(s.Started).Truncate(time.Second), s.RulesInstalled)
	if len(s.XDP) > 0 {
		fmt.Fprintf(out, ", xdp on %v", s.XDP)
	}
	if s.RulesInstalled {
		intact := "yes"
		if !s.RulesIntact {
			intact = "NO"
		}
		fmt.Fprintf(out, "\nrules intact: %s, changed by someone else: %d", intact, s.RulesTampered)
		if s.RulesTampered > 0 {
			fmt.Fprintf(out, " (last %s: %s), re-installed: %d (%d failed)",
				s.LastTamper.Format(time.RFC3339), s.LastTamperChange, s.RulesRepaired, s.RulesRepairFailed)
		}
		if s.RulesGuardError != "" {
			fmt.Fprintf(out, ", guard error: %s", s.RulesGuardError)
		}
	}
	if s.RulesInstalled {
		fmt.Fprintf(out, "\nbypassed (steered, let through unqueued by the kernel): %d", s.QueueBypassed)
	}
	fmt.Fprintf(out, "\nreloads: %d (%d failed)", s.Reloads, s.Failures)
	if s.LastReloadError != "" {
		fmt.Fprintf(out, ", last failure: %s", s.LastReloadError)
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "queue\tpackets\taccept\tdrop\treject\toffload\tcached\tflows\tevicted\tkdrop\tudrop\tp50\tp99\t")
	for _, q := range s.Queues {
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", q.Queue, q.Packets,
			q.Accepted, q.Dropped, q.Rejected, q.Offloaded, q.Cached, q.FlowEntries, q.FlowEvictions,
			q.KernelQueueDropped, q.KernelUserDropped, quantile(q.Latency, 0.5), quantile(q.Latency, 0.99))
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "rule\taction\thits")
	for _, r := range s.Rules {
		a := r.Action
		if r.AlertAs != "" {
			a += " (would " + r.AlertAs + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\n", r.Name, a, r.Hits)
	}
	fmt.Fprintf(w, "(default)\t%s\t%d\n", s.Default.Action, s.Default.Hits)
	w.Flush()
	var alertDrop, alertReject uint64
	for _, q := range s.Queues {
		alertDrop, alertReject = alertDrop+q.AlertDrop, alertReject+q.AlertReject
	}
	if alertDrop+alertReject > 0 {
		fmt.Fprintf(out, "\nalerts: %d packets accepted that alert rules would drop, %d would reject\n", alertDrop, alertReject)
	}
	if r := s.Record; r != nil {
		fmt.Fprintf(out, "\nrecord: %d lines (%d flows), %d dropped (buffer full), %d over the rate, %d sampled out\n",
			r.Written, r.Flows, r.Dropped, r.Limited, r.Sampled)
	}
	if n := s.Names; n != nil {
		printNames(out, n)
	}
	if s.BlockQueued+s.BlockDropped+s.BlockErrors > 0 {
		fmt.Fprintf(out, "\nsource blocks: %d queued, %d dropped (channel full), %d failed\n",
			s.BlockQueued, s.BlockDropped, s.BlockErrors)
	}
}

// quantile returns the upper bound of the bucket holding quantile q, as a
// string ("-" without samples, ">10ms" past the last bound).
func quantile(h engine.Histogram, q float64) string {
	if h.Count == 0 {
		return "-"
	}
	want := uint64(q*float64(h.Count) + 0.5)
	if want == 0 {
		want = 1
	}
	var cum uint64
	for i, n := range h.Buckets {
		cum += n
		if cum >= want {
			if i < len(h.Bounds) {
				return "<=" + time.Duration(h.Bounds[i]*1e9).String()
			}
			break
		}
	}
	return ">" + time.Duration(h.Bounds[len(h.Bounds)-1]*1e9).String()
}

// printNames prints the dst_name/src_name bindings and their counters.
func printNames(out io.Writer, n *engine.NameStats) {
	fmt.Fprintf(out, "\nname bindings: %d (answers %d, unsolicited %d, untrusted %d, malformed %d, evicted %d, kernel updates dropped %d)\n",
		n.Bindings, n.Answers, n.Unsolicited, n.Untrusted, n.Malformed, n.Evicted, n.UpdateDrops)
	if len(n.List) == 0 {
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "name\taddress\tttl")
	for _, b := range n.List {
		fmt.Fprintf(w, "%s\t%s\t%.1fs\n", b.Name, b.Addr, b.TTL)
	}
	w.Flush()
	if n.Truncated {
		fmt.Fprintf(out, "(the first %d; --json lists the same)\n", len(n.List))
	}
}
