package bench

import (
	"slices"
	"time"
)

// Sample is one run of one mode: raw counts over the measured window.
type Sample struct {
	Seconds        float64 `json:"seconds"`
	Sent           uint64  `json:"sent"`            // packets (UDP) or bytes (TCP) the generator sent
	Delivered      uint64  `json:"delivered"`       // packets the sink received (UDP)
	DeliveredBytes uint64  `json:"delivered_bytes"` // payload bytes the sink received
	SinkDrops      uint64  `json:"sink_drops"`      // sink socket buffer overruns
	Queued         uint64  `json:"queued"`          // packets the kernel queued (id_sequence)
	QueueDropped   uint64  `json:"queue_dropped"`
	UserDropped    uint64  `json:"user_dropped"`
	HandlerCPU     int64   `json:"handler_cpu_ns"`
	HandlerUser    int64   `json:"handler_user_ns"` // tick resolution (10ms)
	HandlerSys     int64   `json:"handler_sys_ns"`
	SystemCPU      int64   `json:"system_cpu_ns"` // all CPUs busy time (flood modes)
	Dropped        uint64  `json:"dropped"`       // flood modes: packets the firewall dropped
	RTTMedian      int64   `json:"rtt_median_ns"`
	RTTP99         int64   `json:"rtt_p99_ns"`
	RTTLost        int     `json:"rtt_lost"`
	RTTSamples     int     `json:"rtt_samples"`
	// DrainPackets were drained from a full queue in DrainSeconds (the
	// drain phase, summed over its bursts).
	DrainPackets uint64  `json:"drain_packets,omitempty"`
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
	// DrainDisturbed bursts were discarded and run again because
	// DrainForeign packets (not the burst's: the latency probe's late
	// echoes) filled the queue and pushed some of their frames out.
	DrainDisturbed int    `json:"drain_disturbed,omitempty"`
	DrainForeign   uint64 `json:"drain_foreign,omitempty"`
	// Loads are the cost phase's windows, one per offered rate.
	Loads []LoadSample `json:"loads,omitempty"`
	// Conns are the short connections completed in the window (Conn
	// traffic); ConnFailures those refused, timed out or cut short.
	Conns        uint64 `json:"connections,omitempty"`
	ConnFailures uint64 `json:"connection_failures,omitempty"`
}

// LoadSample is one window of the cost phase: the generator paced at Rate
// packets/s, the firewall's CPU read from the clocks that carry its work
// (see bench/cost_linux.go).
type LoadSample struct {
	Rate         int     `json:"rate_pps"`
	Seconds      float64 `json:"seconds"`
	Sent         uint64  `json:"sent"`
	Delivered    uint64  `json:"delivered"`
	Queued       uint64  `json:"queued"` // id_sequence of the mode's queues: 0 when the kernel decided everything
	QueueDropped uint64  `json:"queue_dropped"`
	UserDropped  uint64  `json:"user_dropped"`
	// GenCPU is the generator thread's CPU: its sending, and the firewall's
	// softirq work up to the queue or the sink carried in its context;
	// GenFloor is its sending alone per packet (the calibration).
	GenCPU      int64   `json:"generator_cpu_ns"`
	GenFloor    float64 `json:"generator_floor_ns_per_packet"`
	HandlerCPU  int64   `json:"handler_cpu_ns"`
	SoftirqdCPU int64   `json:"ksoftirqd_cpu_ns"`
}

// firewallNS is the firewall's CPU per packet sent in the window.
func (l LoadSample) firewallNS() float64 {
	if l.Sent == 0 {
		return 0
	}
	kernel := float64(l.GenCPU) - l.GenFloor*float64(l.Sent)
	return (max(kernel, 0) + float64(l.HandlerCPU) + float64(l.SoftirqdCPU)) / float64(l.Sent)
}

// LoadResult is one offered rate's figures over the runs.
type LoadResult struct {
	Rate         int     `json:"rate_pps"`
	SentPPS      Summary `json:"sent_pps"`
	DeliveredPPS Summary `json:"delivered_pps"`
	// FirewallNS is the whole firewall's CPU per packet (the kernel's
	// work plus the handler process), HandlerNS the handler's part.
	FirewallNS   Summary `json:"firewall_cpu_ns_per_packet"`
	HandlerNS    Summary `json:"handler_cpu_ns_per_packet"`
	Queued       uint64  `json:"queued"` // summed over runs
	QueueDropped uint64  `json:"queue_dropped"`
	UserDropped  uint64  `json:"user_dropped"`
	// VsKernel is FirewallNS over kernel-only forwarding's at the same
	// rate (the floor), VsC over the C peer's; PairedVsKernel the same
	// ratio run by run.
	VsKernel       float64 `json:"vs_kernel,omitempty"`
	VsC            float64 `json:"vs_c,omitempty"`
	PairedVsKernel Summary `json:"paired_vs_kernel,omitzero"`
}

// GenFloor is the generator's own CPU per packet at one rate.
type GenFloor struct {
	Rate        int     `json:"rate_pps"`
	NSPerPacket float64 `json:"ns_per_packet"`
}

// Summary is the median and spread of one figure over the runs.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Result is one mode's row.
type Result struct {
	Mode    string  `json:"mode"`
	Group   string  `json:"group"`
	Family  Family  `json:"family,omitempty"` // chart colour; empty in older reports (see family)
	Traffic Traffic `json:"traffic"`
	Queues  int     `json:"queues"`
	About   string  `json:"about"`
	Skipped string  `json:"skipped,omitempty"` // why the mode could not run
	Error   string  `json:"error,omitempty"`   // how the mode failed
	Pinning string  `json:"pinning,omitempty"`

	SentPPS       Summary `json:"sent_pps"`
	DeliveredPPS  Summary `json:"delivered_pps"`
	DeliveredMbps Summary `json:"delivered_mbps"`
	CPUPerPacket  Summary `json:"handler_cpu_ns_per_packet"`
	// UserShare is the handler's user-space part of its CPU time (0..1):
	// the rest is the kernel (receive, verdict, reinjection, forwarding).
	UserShare    Summary `json:"handler_user_share"`
	SystemCPUPkt Summary `json:"system_cpu_ns_per_packet,omitzero"`
	DroppedPPS   Summary `json:"dropped_pps,omitzero"`
	QueueDropped uint64  `json:"queue_dropped"` // summed over runs
	UserDropped  uint64  `json:"user_dropped"`
	SinkDrops    uint64  `json:"sink_drops"`
	LatencyP50Us Summary `json:"latency_median_us"`
	LatencyP99Us Summary `json:"latency_p99_us"`
	// DrainPPS is the rate a full queue was drained at: the handler's
	// capacity, with the generator idle.
	DrainPPS Summary `json:"drain_pps,omitzero"`
	// ConnPS is the short connections completed per second (Conn
	// traffic), CPUPerConn the handler's CPU time per connection, and
	// ConnFailures the failed connections summed over runs.
	ConnPS       Summary `json:"conn_per_s,omitzero"`
	CPUPerConn   Summary `json:"handler_cpu_ns_per_connection,omitzero"`
	ConnFailures uint64  `json:"connection_failures,omitempty"`
	// Cost is the cost phase per offered rate (Config.LoadRates).
	Cost []LoadResult `json:"cost_at_load,omitempty"`

	// VsC and VsKernel compare delivered packets/s (bytes/s for TCP, drop
	// rate for floods) with the C peer and kernel-only for the same
	// traffic; 0 when either side did not run.
	VsC      float64 `json:"vs_c,omitempty"`
	VsKernel float64 `json:"vs_kernel,omitempty"`
	// VsQueue compares a flood mode's drop rate with the queue deciding.
	VsQueue float64 `json:"vs_queue,omitempty"`
	// DrainVsC compares DrainPPS with the C peer's for the same traffic;
	// DrainVsGo with go-nfqueue's (as its README shows) flood rate when its
	// queue overflowed there, which made that rate its capacity.
	DrainVsC  float64 `json:"drain_vs_c,omitempty"`
	DrainVsGo float64 `json:"drain_vs_gonfqueue,omitempty"`
	// PairedVsC and PairedDrainVsC are the same comparisons made run by
	// run: runs are interleaved, so run i of two modes were measured
	// seconds apart, and the spread of these ratios is the comparison's
	// own noise rather than the machine's drift over the whole run.
	PairedVsC      Summary `json:"paired_vs_c,omitzero"`
	PairedDrainVsC Summary `json:"paired_drain_vs_c,omitzero"`

	Samples []Sample `json:"samples,omitempty"`
}

// Ran reports whether the mode produced figures.
func (r *Result) Ran() bool { return r.Skipped == "" && r.Error == "" && len(r.Samples) > 0 }

// Report is everything one Run measured.
type Report struct {
	Started  time.Time `json:"started"`
	Host     string    `json:"host"`
	Kernel   string    `json:"kernel"`
	CPUs     int       `json:"cpus"`
	Pinning  string    `json:"pinning"`
	Duration string    `json:"duration_per_mode"`
	Runs     int       `json:"runs"`
	Flows    string    `json:"flows"`
	// Generator and Sink say how the UDP load was sent and counted, and
	// why a fallback was taken.
	Generator string `json:"generator"`
	Sink      string `json:"sink"`
	// Load is /proc/loadavg's 1-minute figure before and after the run:
	// other work on the machine shows here and skews the figures.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
	// GenFloor is the cost phase's calibration; CostSkipped says why the
	// phase did not run, when it did not.
	GenFloor    []GenFloor `json:"generator_floor,omitempty"`
	CostSkipped string     `json:"cost_skipped,omitempty"`
	Results     []Result   `json:"results"`
}

func summarize(v []float64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// finish computes a result's summaries from its samples.
func (r *Result) finish() {
	var sent, dpps, mbps, cpu, sys, drop, p50, p99, user, drain, cps, cpuConn []float64
	r.QueueDropped, r.UserDropped, r.SinkDrops, r.ConnFailures = 0, 0, 0, 0
	for _, s := range r.Samples {
		if s.Seconds <= 0 {
			continue
		}
		sent = append(sent, float64(s.Sent)/s.Seconds)
		dpps = append(dpps, float64(s.Delivered)/s.Seconds)
		mbps = append(mbps, float64(s.DeliveredBytes)*8/s.Seconds/1e6)
		// The kernel numbers a packet after the queue-full check, so Queued
		// excludes queue_dropped but includes user_dropped.
		handled := s.Queued - min(s.Queued, s.UserDropped)
		if r.Traffic == Flood {
			handled = s.Dropped
		}
		if handled == 0 && r.Queues == 0 {
			handled = s.Delivered
		}
		if s.HandlerCPU > 0 && handled > 0 {
			cpu = append(cpu, float64(s.HandlerCPU)/float64(handled))
		}
		if s.HandlerUser+s.HandlerSys > 0 {
			user = append(user, float64(s.HandlerUser)/float64(s.HandlerUser+s.HandlerSys))
		}
		if s.SystemCPU > 0 && s.Dropped > 0 {
			sys = append(sys, float64(s.SystemCPU)/float64(s.Dropped))
		}
		if r.Traffic == Flood {
			drop = append(drop, float64(s.Dropped)/s.Seconds)
		}
		if s.RTTSamples > 0 {
			p50 = append(p50, float64(s.RTTMedian)/1e3)
			p99 = append(p99, float64(s.RTTP99)/1e3)
		}
		if d := s.drainPPS(); d > 0 {
			drain = append(drain, d)
		}
		if r.Traffic == Conn {
			cps = append(cps, float64(s.Conns)/s.Seconds)
			if s.HandlerCPU > 0 && s.Conns > 0 {
				cpuConn = append(cpuConn, float64(s.HandlerCPU)/float64(s.Conns))
			}
		}
		r.ConnFailures += s.ConnFailures
		r.QueueDropped += s.QueueDropped
		r.UserDropped += s.UserDropped
		r.SinkDrops += s.SinkDrops
	}
	r.SentPPS, r.DeliveredPPS, r.DeliveredMbps = summarize(sent), summarize(dpps), summarize(mbps)
	r.CPUPerPacket, r.SystemCPUPkt, r.DroppedPPS = summarize(cpu), summarize(sys), summarize(drop)
	r.LatencyP50Us, r.LatencyP99Us = summarize(p50), summarize(p99)
	r.UserShare = summarize(user)
	r.DrainPPS = summarize(drain)
	r.ConnPS, r.CPUPerConn = summarize(cps), summarize(cpuConn)
	r.Cost = costResults(r.Samples)
}

// costResults summarizes the cost phase's windows by rate, in the order
// the rates were run.
func costResults(samples []Sample) []LoadResult {
	var out []LoadResult
	idx := map[int]int{}
	var sent, deliv, fw, h [][]float64
	for _, s := range samples {
		for _, l := range s.Loads {
			if l.Seconds <= 0 {
				continue
			}
			i, ok := idx[l.Rate]
			if !ok {
				i = len(out)
				idx[l.Rate] = i
				out = append(out, LoadResult{Rate: l.Rate})
				sent, deliv, fw, h = append(sent, nil), append(deliv, nil), append(fw, nil), append(h, nil)
			}
			r := &out[i]
			sent[i] = append(sent[i], float64(l.Sent)/l.Seconds)
			deliv[i] = append(deliv[i], float64(l.Delivered)/l.Seconds)
			fw[i] = append(fw[i], l.firewallNS())
			if l.Sent > 0 {
				h[i] = append(h[i], float64(l.HandlerCPU)/float64(l.Sent))
			}
			r.Queued += l.Queued
			r.QueueDropped += l.QueueDropped
			r.UserDropped += l.UserDropped
		}
	}
	for i := range out {
		out[i].SentPPS, out[i].DeliveredPPS = summarize(sent[i]), summarize(deliv[i])
		out[i].FirewallNS, out[i].HandlerNS = summarize(fw[i]), summarize(h[i])
	}
	return out
}

// costRatios fills the cost phase's ratios to kernel-only and the C peer.
func costRatios(rs []Result) {
	var kernel, c *Result
	for i := range rs {
		switch {
		case rs[i].Mode == "kernel" && rs[i].Ran():
			kernel = &rs[i]
		case rs[i].Mode == "c-nfq" && rs[i].Ran():
			c = &rs[i]
		}
	}
	at := func(r *Result, rate int) *LoadResult {
		if r == nil {
			return nil
		}
		for i := range r.Cost {
			if r.Cost[i].Rate == rate {
				return &r.Cost[i]
			}
		}
		return nil
	}
	for i := range rs {
		for j := range rs[i].Cost {
			l := &rs[i].Cost[j]
			if k := at(kernel, l.Rate); k != nil && k.FirewallNS.Median > 0 {
				l.VsKernel = l.FirewallNS.Median / k.FirewallNS.Median
				l.PairedVsKernel = pairedLoad(rs[i].Samples, kernel.Samples, l.Rate)
			}
			if cl := at(c, l.Rate); cl != nil && cl.FirewallNS.Median > 0 {
				l.VsC = l.FirewallNS.Median / cl.FirewallNS.Median
			}
		}
	}
}

// pairedLoad is the firewall CPU per packet of a over b's at rate, run by run.
func pairedLoad(a, b []Sample, rate int) Summary {
	f := func(s Sample) float64 {
		for _, l := range s.Loads {
			if l.Rate == rate {
				return l.firewallNS()
			}
		}
		return 0
	}
	return paired(a, b, f)
}

// figure is what ratios compare: packets/s, bytes/s for TCP, connections/s
// for Conn, drops/s for floods.
func (r *Result) figure() float64 {
	switch r.Traffic {
	case TCP:
		return r.DeliveredMbps.Median
	case Conn:
		return r.ConnPS.Median
	case Flood:
		return r.DroppedPPS.Median
	}
	return r.DeliveredPPS.Median
}

// Recompute fills every result's summaries and the ratios from the samples.
func (r *Report) Recompute() {
	for i := range r.Results {
		r.Results[i].finish()
	}
	ratios(r.Results)
	costRatios(r.Results)
}

// rate is the figure ratios compare, per second: packets delivered,
// bytes for TCP, connections for Conn; 0 without a window.
func (s Sample) rate(t Traffic) float64 {
	if s.Seconds <= 0 {
		return 0
	}
	switch t {
	case TCP:
		return float64(s.DeliveredBytes) / s.Seconds
	case Conn:
		return float64(s.Conns) / s.Seconds
	}
	return float64(s.Delivered) / s.Seconds
}

// drainPPS is the sample's drain rate, 0 when it had no drain phase.
func (s Sample) drainPPS() float64 {
	if s.DrainSeconds <= 0 {
		return 0
	}
	return float64(s.DrainPackets) / s.DrainSeconds
}

// paired summarizes f(a[i])/f(b[i]) over the runs both have a figure for.
func paired(a, b []Sample, f func(Sample) float64) Summary {
	var v []float64
	for i := range min(len(a), len(b)) {
		if x, y := f(a[i]), f(b[i]); x > 0 && y > 0 {
			v = append(v, x/y)
		}
	}
	return summarize(v)
}

// ratios fills VsC and VsKernel from the rows of the same traffic.
func ratios(rs []Result) {
	for i := range rs {
		r := &rs[i]
		r.VsC, r.VsKernel, r.VsQueue, r.DrainVsC, r.DrainVsGo = 0, 0, 0, 0, 0
		r.PairedVsC, r.PairedDrainVsC = Summary{}, Summary{}
	}
	find := func(kind, traffic string) *Result {
		for i := range rs {
			r := &rs[i]
			if r.Ran() && r.Mode == kind+traffic {
				return r
			}
		}
		return nil
	}
	ref := func(kind, traffic string) float64 {
		if r := find(kind, traffic); r != nil {
			return r.figure()
		}
		return 0
	}
	for i := range rs {
		r := &rs[i]
		if !r.Ran() || r.Traffic == Flood {
			continue
		}
		suffix := ""
		switch r.Traffic {
		case UDPMTU:
			suffix = ":mtu"
		case TCP:
			suffix = ":tcp"
		case Conn:
			suffix = ":conn"
		}
		if c := ref("c-nfq", suffix); c > 0 {
			r.VsC = r.figure() / c
		}
		if k := ref("kernel", suffix); k > 0 {
			r.VsKernel = r.figure() / k
		}
		if c := find("c-nfq", suffix); c != nil {
			if c.DrainPPS.Median > 0 {
				r.DrainVsC = r.DrainPPS.Median / c.DrainPPS.Median
			}
			t := r.Traffic
			r.PairedVsC = paired(r.Samples, c.Samples, func(s Sample) float64 { return s.rate(t) })
			r.PairedDrainVsC = paired(r.Samples, c.Samples, Sample.drainPPS)
		}
		// go-nfqueue has no drain phase: where its full queue or socket
		// dropped packets in the flood it was the limit, and that rate is
		// its capacity.
		if g := find("go-nfqueue", suffix); g != nil && g.QueueDropped+g.UserDropped > 0 && g.DeliveredPPS.Median > 0 && r.DrainPPS.Median > 0 {
			r.DrainVsGo = r.DrainPPS.Median / g.DeliveredPPS.Median
		}
	}
	// Floods compare with the queue deciding each packet.
	var q float64
	for i := range rs {
		if rs[i].Mode == "flood-queue" && rs[i].Ran() {
			q = rs[i].figure()
		}
	}
	for i := range rs {
		if rs[i].Traffic == Flood && rs[i].Ran() && q > 0 {
			rs[i].VsQueue = rs[i].figure() / q
		}
	}
}
