package bench

import (
	"errors"
	"runtime"
	"slices"
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
	// TCPConns is the number of bulk TCP streams (default 4), and
	// ConnWorkers the clients (and as many servers) that open short
	// connections one after the other (default 16).
	TCPConns, ConnWorkers int
	// Generator is the UDP flood generator: "packet" (prebuilt Ethernet
	// frames through an AF_PACKET socket that bypasses the qdisc), "udp"
	// (one connected UDP socket per flow), or empty for packet, falling
	// back to udp when packet cannot be used. The report names the one
	// that ran.
	Generator string
	// Sink is how the sink counts the flood port: "nft" (a counting, dropping
	// nftables rule at the sink link's ingress hook), "socket"
	// (SO_REUSEPORT sockets read with recvmmsg), or empty for nft, falling
	// back to socket.
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
	// Daemon is the command that runs the qguard binary for the daemon
	// modes (`run --config F ...` is appended); DaemonEnv is added to its
	// environment. Empty: Run builds cmd/qguard with the go tool from this
	// package's source tree, and skips the daemon modes (saying why) when
	// it cannot.
	Daemon    []string
	DaemonEnv []string
	// CC is the C compiler for the libnetfilter_queue peer (default "cc").
	CC string
	// PeerSource is the directory holding nfq_accept.c (default: the
	// source copy embedded in the binary).
	PeerSource string

	// LoadRates are the offered rates (packets/s) of the cost-at-load
	// phase (default 50,000 and 150,000: well under every handler's
	// capacity but go-nfqueue's), LoadDuration its window per rate
	// (default 2s, quick 1s). NoCost skips the phase.
	LoadRates    []int
	LoadDuration time.Duration
	NoCost       bool

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
	set(&o.LoadDuration, 2*time.Second, time.Second)
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
	def(&o.ConnWorkers, 16)
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
	if len(o.LoadRates) == 0 {
		o.LoadRates = []int{50_000, 150_000}
	}
	if o.CC == "" {
		o.CC = "cc"
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
