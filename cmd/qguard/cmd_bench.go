package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/qguard/qguard/bench"
	"github.com/qguard/qguard/bench/peers/gonfqueue"
	"github.com/qguard/qguard/queue"
)

func init() {
	var (
		cfg       bench.Config
		modes     string
		batches   []int
		jsonPath  string
		plotPath  string
		list      bool
		genCPU    int
		sinkCPU   int
		handlerCP []int
		fromJSON  string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "measure qguard against kernel forwarding, a C libnetfilter_queue handler and go-nfqueue",
		Long: `bench builds a throwaway client -> firewall -> server topology in fresh network
namespaces, floods it, and measures every mode in one run: kernel forwarding
without a queue, a minimal C handler on libnetfilter_queue, go-nfqueue v2, and
qguard's queue engine in its verdict modes, batch sizes, fanout and with the
engine's handler on a policy, and the daemon itself (qguard run with a
configuration file and its own rules: observe, a policy, L7 rules, flow
offload, kernel-first). It needs root and removes everything it made on exit,
on error and on Ctrl-C.

Each queue mode gets two throughput figures: the flood (what reaches the sink;
on a small machine the generator's CPU, which also does the firewall's
queueing work, can be the limit for every handler that keeps up) and the drain
(a full queue emptied with the handler resumed and the generator idle: the
handler's capacity). The cost phase offers fixed rates well under every
handler's capacity (--load-rates) and reports the whole firewall's CPU per
packet as a ratio to kernel-only forwarding. The :tcp modes run bulk TCP
streams (Gbit/s) and the :conn modes short connections back to back
(connections/s), every handler asking for GSO super-packets whole as a
deployment does (:tcp-nogso: segmented before the queue). With --runs N the
modes interleave and every mode is also compared with the C handler run by
run. The table is one section per traffic kind; --plot draws the same as an
SVG chart (rsvg-convert -o chart.png chart.svg renders it).

Micro-benchmarks of the hot paths live beside the code:
  go test -run '^$' -bench . -benchmem ./queue ./verdict ./internal/engine ./xdp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modes != "" {
				cfg.Modes = strings.Split(modes, ",")
			}
			cfg.Batches = batches
			if fromJSON != "" {
				rep, err := bench.LoadJSON(fromJSON)
				if err != nil {
					return err
				}
				if err := rep.WriteTable(cmd.OutOrStdout()); err != nil {
					return err
				}
				if plotPath != "" {
					return rep.WritePlot(plotPath)
				}
				return nil
			}
			if list {
				ms, err := bench.SelectModes(&cfg)
				if err != nil {
					return err
				}
				for _, m := range ms {
					fmt.Fprintf(cmd.OutOrStdout(), "%-26s %-7s %s\n", m.Name, m.Traffic, m.About)
				}
				return nil
			}
			if cmd.Flags().Changed("gen-cpu") {
				cfg.GenCPU = &genCPU
			}
			if cmd.Flags().Changed("sink-cpu") {
				cfg.SinkCPU = &sinkCPU
			}
			cfg.HandlerCPUs = handlerCP
			if _, err := bench.SelectModes(&cfg); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own executable for the go-nfqueue peer: %w", err)
			}
			cfg.GoPeer = []string{exe, "bench", "peer-gonfqueue"}
			cfg.QGuardPeer = []string{exe, "bench", "peer-qguard"}
			cfg.Daemon = []string{exe}
			if isTerminal(os.Stdout) {
				cfg.Progress = progressLine(os.Stderr)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, &cfg)
			if cfg.Progress != nil {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			if err != nil && rep == nil {
				return err
			}
			if rep != nil {
				if werr := rep.WriteTable(cmd.OutOrStdout()); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
			if jsonPath != "" {
				if err := rep.SaveJSON(jsonPath); err != nil {
					return err
				}
			}
			if plotPath != "" {
				if err := rep.WritePlot(plotPath); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Quick, "quick", false, "all modes with short phases (under two minutes)")
	f.DurationVar(&cfg.Duration, "duration", 0, "measured throughput phase per mode (default 3s, quick 1s)")
	f.IntVar(&cfg.Runs, "runs", 1, "repetitions of every mode; the table shows median and spread")
	f.StringVar(&modes, "modes", "", "comma-separated modes or groups (limit, peer, qguard, daemon, flood); see --list")
	f.BoolVar(&list, "list", false, "list the modes and exit")
	f.IntSliceVar(&batches, "batches", nil, fmt.Sprintf("qguard batch sizes to measure (default 32,%d: the C peer's and qguard's default)", queue.DefaultBatchSize))
	f.IntVar(&cfg.PeerBatch, "peer-batch", 0, "verdict batch size of the C and go-nfqueue batch modes (default 32)")
	f.IntVar(&cfg.PolicyRules, "rules", 0, "rules in the policy mode (default 100)")
	f.IntVar(&cfg.FanoutQueues, "fanout", 0, "queues in the fanout mode (default 2)")
	f.IntVar(&cfg.Nice, "nice", 0, "nice value of generator, sink and handler threads (default -10)")
	f.BoolVar(&cfg.NoRenice, "no-renice", false, "leave the harness threads at the normal priority")
	f.BoolVar(&cfg.NoIPv6, "no-ipv6", false, "IPv4 flows only")
	f.IntVar(&genCPU, "gen-cpu", 0, "CPU for the generator, -1 unpinned (default: the first CPU)")
	f.IntVar(&sinkCPU, "sink-cpu", 0, "CPU for the sink, -1 unpinned (default: the first CPU)")
	f.IntSliceVar(&handlerCP, "handler-cpus", nil, "CPUs for the handler threads (default last CPU, then the others)")
	f.StringVar(&cfg.Generator, "generator", "", "traffic generator: packet (AF_PACKET raw frames) or udp (sockets); default packet, udp when raw frames cannot be used")
	f.StringVar(&cfg.Sink, "sink", "", "sink: nft (ingress counter) or socket (recvmmsg); default nft, socket when nftables cannot be used")
	f.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	f.StringVar(&fromJSON, "from-json", "", "measure nothing: print the report saved with --json in this file (and --plot it)")
	f.StringVar(&plotPath, "plot", "", "also write an SVG chart (a panel per traffic kind, flood and drain per mode) to this .svg file")
	f.DurationVar(&cfg.LatencyInterval, "latency-interval", 0, "interval of the low-rate echo probe (default 1ms)")
	f.IntVar(&cfg.LatencySamples, "latency-samples", 0, "echo probes per mode (default 1000, quick 200)")
	f.IntVar(&cfg.DrainBurst, "drain-burst", 0, "packets queued per burst of the drain phase, at most the queue length (default 16384)")
	f.IntVar(&cfg.QueueMaxLen, "queue-len", 0, "kernel queue length of the C and qguard handlers (default 16384)")
	f.IntVar(&cfg.DrainBursts, "drain-bursts", 0, "bursts of the drain phase per mode and run (default 10, quick 4)")
	f.BoolVar(&cfg.NoDrain, "no-drain", false, "skip the drain phase (a full queue emptied with the generator idle)")
	f.IntSliceVar(&cfg.LoadRates, "load-rates", nil, "offered packets/s of the cost-at-load phase (default 50000,150000)")
	f.DurationVar(&cfg.LoadDuration, "load-duration", 0, "window per offered rate of the cost-at-load phase (default 2s, quick 1s)")
	f.BoolVar(&cfg.NoCost, "no-cost", false, "skip the cost-at-load phase (the firewall's CPU per packet at fixed offered rates)")

	peer := &cobra.Command{
		Use:    "peer-gonfqueue",
		Short:  "run the go-nfqueue peer (used by bench inside its firewall namespace)",
		Hidden: true,
		// The peer parses its own flags.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return gonfqueue.Main(args)
		},
	}
	qpeer := &cobra.Command{
		Use:                "peer-qguard",
		Short:              "run qguard's queue engine as bench's handler process inside its firewall namespace",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return bench.QGuardPeer(args)
		},
	}
	cmd.AddCommand(peer, qpeer)
	root.AddCommand(cmd)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine redraws one status line on a terminal.
func progressLine(w *os.File) func(bench.Progress) {
	start := time.Now()
	return func(p bench.Progress) {
		fmt.Fprintf(w, "\r\033[K[%s] run %d/%d  mode %d/%d  %s: %s",
			time.Since(start).Truncate(time.Second), p.Run, p.Runs, p.Index, p.Of, p.Mode, p.Phase)
	}
}
