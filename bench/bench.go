package bench

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/qguard/qguard/queue"
)

// Errors for bad configuration.
var (
	// ErrUnknownMode is returned when Config.Modes names a mode that does not exist.
	ErrUnknownMode = errors.New("unknown mode")
	// ErrBadCPU is returned when a pinning names a CPU the process may not use.
	ErrBadCPU = errors.New("not a usable CPU")
	// ErrBadChoice is returned when Config.Generator or Config.Sink names
	// no known kind.
	ErrBadChoice = errors.New("unknown choice")
)

// Traffic is the kind of load a mode runs under.
type Traffic string

// Traffic kinds.
const (
	UDP64  Traffic = "udp64"  // 64-byte IP packets, UDP
	UDPMTU Traffic = "udpmtu" // 1500-byte IP packets, UDP
	TCP    Traffic = "tcp"    // a few bulk TCP streams
	Flood  Traffic = "flood"  // 64-byte UDP from one blocked source
)

// Groups of modes.
const (
	GroupLimit  = "limit"  // kernel forwarding, no queue
	GroupPeer   = "peer"   // other NFQUEUE handlers
	GroupQGuard = "qguard" // qguard's engine
	GroupFlood  = "flood"  // blocked-source flood: who drops it, at what cost
)

// Mode is one way of forwarding the load, measured as one row of the report.
type Mode struct {
	Name    string
	Group   string
	Traffic Traffic
	Queues  int    // queues the handler binds; 0 when none
	About   string // one line for the table's legend

	kind    string // selects the handler
	batch   int    // verdict batch size (peers and qguard)
	verdict string // qguard verdict mode: batch, vectored, perpacket
	rules   int    // qguard policy size
	// selfSteer: the handler installs its own steering (qguard's table),
	// so the harness adds no iptables rule.
	selfSteer bool
}

// Config tunes a run. The zero value (or nil) means defaults.
type Config struct {
	// Modes filters modes by name; a name without ":" also selects its
	// traffic variants ("kernel" selects "kernel:mtu" and "kernel:tcp").
	Modes []string
	// Quick shortens every phase so all modes finish in well under two minutes.
	Quick bool
	// Duration is each mode's measured throughput phase (default 3s, quick 1s).
	Duration time.Duration
	// Warmup runs before measuring (default 300ms, quick 150ms).
	Warmup time.Duration
	// Runs repeats every mode; the report gives median, min and max.
	Runs int
	// LatencySamples and LatencyInterval shape the low-rate echo probe
	// (default 1000 at 1ms, quick 200).
	LatencySamples  int
	LatencyInterval time.Duration

	// SrcAddrs is the number of client source addresses per family and
	// PortsPerAddr the flows per address (defaults 8 and 4).
	SrcAddrs, PortsPerAddr int
	// IPv6 adds IPv6 flows next to the IPv4 ones (default true; set NoIPv6).
	NoIPv6 bool
	// SinkSockets is the number of SO_REUSEPORT sockets at the sink.
	SinkSockets int
	// TCPConns is the number of bulk TCP streams (default 4).
	TCPConns int
	// Generator is the UDP flood generator: "packet" (prebuilt Ethernet
	// frames through an AF_PACKET socket that bypasses the qdisc), "udp"
	// (one connected UDP socket per flow), or empty for packet, falling
	// back to udp when packet cannot be used (environment
	// QGUARD_BENCH_GENERATOR sets it when empty). The report names the one
	// that ran.
	Generator string
	// Sink is how the sink counts the flood port: "nft" (a counting, dropping
	// nftables rule at the sink link's ingress hook), "socket"
	// (SO_REUSEPORT sockets read with recvmmsg), or empty for nft, falling
	// back to socket (environment QGUARD_BENCH_SINK sets it when empty).
	Sink string

	// Batches are the qguard batch sizes measured (default 32, the C
	// peer's, and the queue package's default, queue.DefaultBatchSize).
	Batches []int
	// PeerBatch is the C and go-nfqueue batch size (default 32).
	PeerBatch int
	// FanoutQueues is the number of queues in the fanout mode (default 2).
	FanoutQueues int
	// PolicyRules is the size of the policy in the policy mode (default 100).
	PolicyRules int
	// QueueMaxLen is the kernel queue length for C and qguard (default
	// 16384), and RcvBuf their netlink socket's receive buffer, forced
	// (default 64 MiB: a full queue of small packets fits).
	QueueMaxLen, RcvBuf int
	// DrainBurst is the packets queued, with the handler stopped, for each
	// burst of the drain phase (default 16384, capped at QueueMaxLen);
	// DrainBursts is the bursts per mode and run (default 10, quick 4).
	// NoDrain skips the phase.
	DrainBurst, DrainBursts int
	NoDrain                 bool

	// GenCPU and SinkCPU pin the generator and sink threads, HandlerCPUs
	// the handlers (one per queue, cycling). -1 means unpinned. By default
	// the handler gets the last CPU, generator and sink the first; on one
	// CPU nothing is pinned.
	GenCPU, SinkCPU *int
	HandlerCPUs     []int

	// Nice is the nice value of generator, sink and handler threads
	// (default -10), so other load on the machine disturbs the figures
	// less; NoRenice keeps them at the caller's.
	Nice     int
	NoRenice bool

	// GoPeer is the command that runs the go-nfqueue peer (see package
	// bench/peers/gonfqueue); GoPeerEnv is added to its environment. Empty:
	// Run builds bench/peers/gonfqueue/main with the go tool from this
	// package's source tree, and skips the go-nfqueue modes (saying why)
	// when it cannot.
	GoPeer    []string
	GoPeerEnv []string
	// QGuardPeer is the command that runs qguard's queue engine as the
	// handler process of the qguard modes (QGuardPeer; `qguard bench
	// peer-qguard`); QGuardPeerEnv is added to its environment. Empty: Run
	// builds cmd/qguard with the go tool from this package's source tree,
	// and skips the qguard modes (saying why) when it cannot.
	QGuardPeer    []string
	QGuardPeerEnv []string
	// CC is the C compiler for the libnetfilter_queue peer (default "cc").
	CC string
	// PeerSource is the directory holding nfq_accept.c (default: the
	// source copy embedded in the binary).
	PeerSource string

	// Prefix names the namespaces (default "qgb").
	Prefix string
	// Progress, when set, is told what runs now (for a terminal display).
	Progress func(Progress)
}

// Progress describes the phase being run.
type Progress struct {
	Run, Runs   int
	Index, Of   int
	Mode, Phase string
}

func (c *Config) withDefaults() Config {
	var o Config
	if c != nil {
		o = *c
	}
	set := func(d *time.Duration, normal, quick time.Duration) {
		if *d <= 0 {
			*d = normal
			if o.Quick {
				*d = quick
			}
		}
	}
	set(&o.Duration, 3*time.Second, time.Second)
	set(&o.Warmup, 300*time.Millisecond, 150*time.Millisecond)
	set(&o.LatencyInterval, time.Millisecond, time.Millisecond)
	if o.LatencySamples <= 0 {
		o.LatencySamples = 1000
		if o.Quick {
			o.LatencySamples = 200
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Runs, 1)
	def(&o.SrcAddrs, 8)
	def(&o.PortsPerAddr, 4)
	def(&o.SinkSockets, 2)
	def(&o.TCPConns, 4)
	def(&o.PeerBatch, 32)
	def(&o.FanoutQueues, 2)
	def(&o.PolicyRules, 100)
	def(&o.QueueMaxLen, 16384)
	def(&o.RcvBuf, 64<<20)
	def(&o.DrainBurst, 16384)
	if o.DrainBursts <= 0 {
		o.DrainBursts = 10
		if o.Quick {
			o.DrainBursts = 4
		}
	}
	if o.Nice == 0 && !o.NoRenice {
		o.Nice = -10
	}
	if o.NoRenice {
		o.Nice = 0
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{32, queue.DefaultBatchSize}
	}
	if o.CC == "" {
		o.CC = "cc"
	}
	if o.Generator == "" {
		o.Generator = os.Getenv("QGUARD_BENCH_GENERATOR")
	}
	if o.Sink == "" {
		o.Sink = os.Getenv("QGUARD_BENCH_SINK")
	}
	if o.Prefix == "" {
		o.Prefix = "qgb"
	}
	cpus := usableCPUsPortable()
	first, last := -1, -1
	if len(cpus) >= 2 {
		first, last = cpus[0], cpus[len(cpus)-1]
	}
	if o.GenCPU == nil {
		o.GenCPU = &first
	}
	if o.SinkCPU == nil {
		o.SinkCPU = &first
	}
	if len(o.HandlerCPUs) == 0 {
		o.HandlerCPUs = []int{last}
		if len(cpus) >= 2 {
			// Extra queues of a fanout go to the other CPUs in turn.
			for _, c := range slices.Backward(cpus[:len(cpus)-1]) {
				o.HandlerCPUs = append(o.HandlerCPUs, c)
			}
		}
	}
	return o
}

// AllModes lists every mode for the given configuration, in report order.
func AllModes(c *Config) []Mode {
	o := c.withDefaults()
	pb := o.PeerBatch
	ms := []Mode{
		{Name: "kernel", Group: GroupLimit, Traffic: UDP64, kind: "kernel", About: "kernel forwarding, no queue (the limit)"},
		{Name: "c-nfq", Group: GroupPeer, Traffic: UDP64, Queues: 1, kind: "c", batch: pb,
			About: fmt.Sprintf("C on libnetfilter_queue, nfq_set_verdict_batch every %d or when dry", pb)},
		{Name: "c-nfq-perpkt", Group: GroupPeer, Traffic: UDP64, Queues: 1, kind: "c", batch: 1,
			About: "C on libnetfilter_queue, nfq_set_verdict per packet"},
		{Name: "go-nfqueue", Group: GroupPeer, Traffic: UDP64, Queues: 1, kind: "gonfq", batch: 1,
			About: "go-nfqueue v2 as its README shows (SetVerdict per packet)"},
		{Name: "go-nfqueue-batch", Group: GroupPeer, Traffic: UDP64, Queues: 1, kind: "gonfq", batch: pb,
			About: fmt.Sprintf("go-nfqueue v2, SetVerdictBatch every %d or 1ms", pb)},
		{Name: "qguard-perpkt", Group: GroupQGuard, Traffic: UDP64, Queues: 1, kind: "qguard", verdict: "perpacket",
			About: "qguard, one verdict message per packet, one sendmsg each"},
		{Name: "qguard-vectored", Group: GroupQGuard, Traffic: UDP64, Queues: 1, kind: "qguard", verdict: "vectored",
			About: "qguard, per-packet verdict messages, many in one sendmsg"},
	}
	for _, b := range o.Batches {
		ms = append(ms, Mode{Name: fmt.Sprintf("qguard-batch%d", b), Group: GroupQGuard, Traffic: UDP64, Queues: 1,
			kind: "qguard", verdict: "batch", batch: b, About: fmt.Sprintf("qguard, batch verdicts, batch size %d", b)})
	}
	main := mainBatch(o.Batches)
	if main != pb {
		// C at qguard's batch size too: the batch size alone moves the
		// figures, and the comparison should not hide behind it.
		ms = slices.Insert(ms, 3, Mode{Name: fmt.Sprintf("c-nfq-batch%d", main), Group: GroupPeer, Traffic: UDP64, Queues: 1, kind: "c", batch: main,
			About: fmt.Sprintf("C on libnetfilter_queue, nfq_set_verdict_batch every %d or when dry (qguard's batch size)", main)})
	}
	ms = append(ms,
		Mode{Name: fmt.Sprintf("qguard-fanout%d", o.FanoutQueues), Group: GroupQGuard, Traffic: UDP64, Queues: o.FanoutQueues,
			kind: "qguard", verdict: "batch", batch: main,
			About: fmt.Sprintf("qguard, %d queues (--queue-balance), one thread each", o.FanoutQueues)},
		Mode{Name: fmt.Sprintf("qguard-policy%d", o.PolicyRules), Group: GroupQGuard, Traffic: UDP64, Queues: 1,
			kind: "policy", verdict: "batch", batch: main, rules: o.PolicyRules,
			About: fmt.Sprintf("qguard engine + verdict pipeline, %d-rule policy, all accepted", o.PolicyRules)},
		Mode{Name: "qguard-offload", Group: GroupQGuard, Traffic: UDP64, Queues: 1, kind: "offload", verdict: "batch", batch: main, selfSteer: true,
			About: "qguard decides each flow once, the kernel forwards the rest (flow offload)"},
	)
	// Traffic variants for the modes that anchor the comparison.
	for _, base := range []string{"kernel", "c-nfq", "go-nfqueue", fmt.Sprintf("qguard-batch%d", main)} {
		i := slices.IndexFunc(ms, func(m Mode) bool { return m.Name == base })
		if i < 0 {
			continue
		}
		for _, v := range []struct {
			t      Traffic
			suffix string
		}{{UDPMTU, ":mtu"}, {TCP, ":tcp"}} {
			m := ms[i]
			m.Name += v.suffix
			m.Traffic = v.t
			ms = append(ms, m)
		}
	}
	ms = append(ms,
		Mode{Name: "flood-xdp", Group: GroupFlood, Traffic: Flood, kind: "flood-xdp",
			About: "blocked-source flood dropped by qguard's XDP program"},
		Mode{Name: "flood-nftset", Group: GroupFlood, Traffic: Flood, kind: "flood-nftset",
			About: "blocked-source flood dropped by an nftables set lookup"},
		Mode{Name: "flood-queue", Group: GroupFlood, Traffic: Flood, Queues: 1, kind: "flood-queue", verdict: "batch", batch: main,
			About: "blocked-source flood, qguard's queue decides each packet (drop)"},
	)
	return ms
}

// mainBatch is the batch size used where one batch size stands for qguard.
func mainBatch(b []int) int {
	if slices.Contains(b, queue.DefaultBatchSize) {
		return queue.DefaultBatchSize
	}
	return b[len(b)/2]
}

// SelectModes applies Config.Modes to AllModes.
func SelectModes(c *Config) ([]Mode, error) {
	all := AllModes(c)
	if c == nil || len(c.Modes) == 0 {
		return all, nil
	}
	var out []Mode
	for _, want := range c.Modes {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		found := false
		for _, m := range all {
			base, _, _ := strings.Cut(m.Name, ":")
			if m.Name == want || (!strings.Contains(want, ":") && base == want) || (want == m.Group) {
				found = true
				if !slices.ContainsFunc(out, func(o Mode) bool { return o.Name == m.Name }) {
					out = append(out, m)
				}
			}
		}
		if !found {
			names := make([]string, len(all))
			for i, m := range all {
				names[i] = m.Name
			}
			return nil, fmt.Errorf("select mode %q: %w (have %s, or a group: limit, peer, qguard, flood)", want, ErrUnknownMode, strings.Join(names, ", "))
		}
	}
	// Keep report order.
	order := map[string]int{}
	for i, m := range all {
		order[m.Name] = i
	}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Name] < order[out[j].Name] })
	return out, nil
}

func usableCPUsPortable() []int {
	if cpus := usableCPUs(); len(cpus) > 0 {
		return cpus
	}
	out := make([]int, runtime.NumCPU())
	for i := range out {
		out[i] = i
	}
	return out
}
