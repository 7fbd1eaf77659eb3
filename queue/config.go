package queue

import (
	"fmt"
	"log/slog"
	"time"
)

// CopyMode says how much of each packet the kernel copies to user space.
type CopyMode uint8

// Copy modes. The zero value selects CopyPacket.
const (
	CopyDefault CopyMode = iota
	// CopyNone: not even metadata (the kernel refuses to queue then; kept
	// for completeness).
	CopyNone
	// CopyMeta: metadata only, no payload.
	CopyMeta
	// CopyPacket: metadata and up to CopyRange bytes of the packet.
	CopyPacket
)

// Flags are the queue's NFQA_CFG_F_* flags.
type Flags uint32

// Queue flags, values as in nfnetlink_queue.h.
const (
	// FlagFailOpen accepts packets when the queue is full instead of
	// dropping them.
	FlagFailOpen Flags = 1 << 0
	// FlagConntrack adds conntrack attributes (CTID).
	FlagConntrack Flags = 1 << 1
	// FlagGSO delivers GSO super-packets whole instead of segmenting them.
	FlagGSO Flags = 1 << 2
	// FlagUIDGID adds the local socket's UID and GID.
	FlagUIDGID Flags = 1 << 3
	// FlagSecCtx adds the security context.
	FlagSecCtx Flags = 1 << 4
)

// Config configures Open. A nil Config, and every zero field, means the
// default written next to the field.
type Config struct {
	// Num is the first queue number; Count queues Num..Num+Count-1 are
	// bound (default 1).
	Num, Count uint16
	// CopyMode defaults to CopyPacket.
	CopyMode CopyMode
	// CopyRange is the most bytes of each packet copied (default and
	// maximum MaxCopyRange; more is taken as the maximum).
	CopyRange uint32
	// MaxLen is the kernel's queue length limit (default DefaultMaxLen).
	MaxLen uint32
	// Flags are NFQA_CFG_F_* flags; flags not set are cleared.
	Flags Flags
	// RcvBuf is the socket receive buffer in bytes (default DefaultRcvBuf), forced
	// with SO_RCVBUFFORCE where allowed.
	RcvBuf int
	// NoENOBUFS sets NETLINK_NO_ENOBUFS: the kernel stops reporting receive
	// buffer overruns. Without it they are counted in Stats.ENOBUFS.
	NoENOBUFS bool
	// DefaultVerdict is applied when the handler sets none, panics, or the
	// packet cannot be decoded (default Accept).
	DefaultVerdict Verdict
	// VerdictMode defaults to Batch.
	VerdictMode VerdictMode
	// BatchSize is the most packets read per recvmmsg and verdicts held
	// before a flush (default DefaultBatchSize, at most MaxBatchSize). Verdicts
	// are also flushed whenever the socket runs dry, so a large batch only
	// fills under a backlog, where it makes every packet cheaper.
	BatchSize int
	// FlushInterval bounds how long a verdict may wait for its batch while
	// the handler works through the rest of it (default
	// DefaultFlushInterval; looked at
	// every few packets, between handler calls). Verdicts are also flushed
	// whenever the socket runs dry.
	FlushInterval time.Duration
	// BusyPoll is how long a loop whose last read found a backlog keeps
	// polling the empty socket before it sleeps (default 0: never). Under
	// load this saves the wake-ups a sleeping loop costs the CPU that
	// queues packets, at the price of CPU time; at low rates, when each
	// read finds one packet, the loop sleeps at once. In
	// BenchmarkIntegrationForward on a 2-CPU VM it did not pay.
	BusyPoll time.Duration
	// DrainTimeout bounds the drain on shutdown (default 2s). DrainIdle is
	// how long the socket must stay quiet to end it (default 20ms) where
	// the kernel refused the quiescing queue length 0 (see Shutdown in the
	// package documentation).
	DrainTimeout, DrainIdle time.Duration
	// CPUs, when set, pins queue i's thread to CPUs[i%len(CPUs)].
	CPUs []int
	// Logger receives rate-limited reports of ENOBUFS, handler panics and
	// kernel errors (default slog.Default()).
	Logger *slog.Logger
	// BatchDone, when set, runs on a queue's goroutine once the handler has
	// seen every packet of a receive, before the verdicts left are sent: a
	// handler that counts in plain fields publishes them here, once a batch
	// instead of a locked add per packet.
	BatchDone func(queue uint16)
}

// DefaultBatchSize is Config.BatchSize's default. Verdicts flush whenever
// the socket runs dry, so a batch this large fills only under a backlog,
// where larger verdict batches cost the kernel less per packet: in the
// benchmark harness's drain phase 256 was 5-9% faster than 32 in three full
// runs of four and level in the fourth (bench/RESULTS.md), and no slower to
// answer at low rates.
const DefaultBatchSize = 256

// Defaults of the other Config fields: what a zero field means, and what
// the configuration file's queue section documents (examples/qguard.yaml).
const (
	DefaultMaxLen        = 4096
	DefaultRcvBuf        = 8 << 20
	DefaultFlushInterval = time.Millisecond
	// MaxCopyRange is NFQNL_MAX_COPY_RANGE: 0xffff less an attribute header.
	MaxCopyRange = nfqMaxCopyRange
	// MaxBatchSize bounds BatchSize: UIO_MAXIOV bounds recvmmsg's vlen.
	MaxBatchSize = 1024
	// DefaultFlags are fail-open and GSO super-packets whole: the
	// configuration file's defaults (queue.fail_open, queue.gso). A zero
	// Flags field means no flags, not these.
	DefaultFlags = FlagFailOpen | FlagGSO
)

const (
	defaultDrain     = 2 * time.Second
	defaultDrainIdle = 20 * time.Millisecond
)

// DefaultConfig returns the defaults a zero field means, spelled out, with
// DefaultFlags: the configuration file's queue section when it sets
// nothing.
func DefaultConfig() *Config {
	return &Config{Count: 1, CopyMode: CopyPacket, CopyRange: MaxCopyRange, MaxLen: DefaultMaxLen, Flags: DefaultFlags,
		RcvBuf: DefaultRcvBuf, DefaultVerdict: Accept, VerdictMode: Batch, BatchSize: DefaultBatchSize,
		FlushInterval: DefaultFlushInterval}
}

// Validate reports what Open would refuse in c before it touches the
// kernel (nil c is valid).
func (c *Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolve returns a copy of c with defaults filled in, or an error naming
// the bad field.
func (c *Config) resolve() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	if r.Count == 0 {
		r.Count = 1
	}
	if int(r.Num)+int(r.Count) > 1<<16 {
		return r, fmt.Errorf("%w: queues %d..%d exceed 65535", ErrConfig, r.Num, int(r.Num)+int(r.Count)-1)
	}
	if r.CopyMode == CopyDefault {
		r.CopyMode = CopyPacket
	}
	if r.CopyMode > CopyPacket {
		return r, fmt.Errorf("%w: CopyMode %d", ErrConfig, r.CopyMode)
	}
	if r.CopyRange == 0 || r.CopyRange > nfqMaxCopyRange {
		r.CopyRange = nfqMaxCopyRange
	}
	if r.MaxLen == 0 {
		r.MaxLen = DefaultMaxLen
	}
	if r.Flags&^Flags(cfgFlagsAllKnown) != 0 {
		return r, fmt.Errorf("%w: unknown Flags %#x", ErrConfig, uint32(r.Flags&^Flags(cfgFlagsAllKnown)))
	}
	if r.RcvBuf <= 0 {
		r.RcvBuf = DefaultRcvBuf
	}
	if r.DefaultVerdict == VerdictUnset {
		r.DefaultVerdict = Accept
	}
	if r.DefaultVerdict != Accept && r.DefaultVerdict != Drop {
		return r, fmt.Errorf("%w: DefaultVerdict %s (want accept or drop)", ErrConfig, r.DefaultVerdict)
	}
	if r.VerdictMode == VerdictModeDefault {
		r.VerdictMode = Batch
	}
	if r.VerdictMode > PerPacket {
		return r, fmt.Errorf("%w: VerdictMode %d", ErrConfig, r.VerdictMode)
	}
	if r.BatchSize <= 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.BatchSize > MaxBatchSize {
		return r, fmt.Errorf("%w: BatchSize %d > %d", ErrConfig, r.BatchSize, MaxBatchSize)
	}
	if r.FlushInterval <= 0 {
		r.FlushInterval = DefaultFlushInterval
	}
	if r.DrainTimeout <= 0 {
		r.DrainTimeout = defaultDrain
	}
	if r.DrainIdle <= 0 {
		r.DrainIdle = defaultDrainIdle
	}
	for i, cpu := range r.CPUs {
		if cpu < 0 || cpu >= 1024 {
			return r, fmt.Errorf("%w: CPUs[%d] = %d", ErrConfig, i, cpu)
		}
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r, nil
}
