package engine

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the decision latency
// histogram. Decisions are timed for one packet in SampleEvery (see
// sampleMask): reading the clock twice for every packet would cost more than
// a cached flow decision itself.
var LatencyBuckets = []float64{
	1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 10e-3,
}

// SampleEvery is how many packets pass per timed decision.
const SampleEvery = 64

const sampleMask = SampleEvery - 1

// Histogram is a snapshot of the sampled decision latency.
type Histogram struct {
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum_seconds"`
	Bounds []float64 `json:"bounds"`
	// Buckets[i] counts samples <= Bounds[i] (not cumulative); the last
	// element counts the samples above every bound.
	Buckets []uint64 `json:"buckets"`
}

// QueueStats are one queue's counters. Kernel* fields come from
// /proc/net/netfilter/nfnetlink_queue through the queue package.
type QueueStats struct {
	Queue     uint16 `json:"queue"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	Accepted  uint64 `json:"accepted"`
	Dropped   uint64 `json:"dropped"`
	Rejected  uint64 `json:"rejected"`
	Offloaded uint64 `json:"offloaded"`
	Marked    uint64 `json:"marked"`
	Cached    uint64 `json:"cached"`
	Blocked   uint64 `json:"block_requests"`
	// AlertDrop and AlertReject count packets alert rules accepted that
	// they would have dropped or rejected (also counted in Accepted).
	AlertDrop   uint64 `json:"alert_drop"`
	AlertReject uint64 `json:"alert_reject"`
	// FlowEntries and FlowEvictions describe the pipeline's flow table.
	FlowEntries   uint64 `json:"flow_entries"`
	FlowEvictions uint64 `json:"flow_evictions"`
	// KernelQueueDropped counts packets the kernel dropped because the queue
	// was full; KernelUserDropped those lost because the socket buffer was.
	KernelQueueDropped uint64    `json:"kernel_queue_dropped"`
	KernelUserDropped  uint64    `json:"kernel_user_dropped"`
	KernelPending      uint64    `json:"kernel_pending"`
	Latency            Histogram `json:"latency"`
}

// RuleStats counts the decisions one policy rule made, over all queues and
// over reloads that kept a rule of the same name.
type RuleStats struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Hits   uint64 `json:"hits"`
	// AlertAs is what an alert rule (Action "alert") would do: every hit
	// of such a rule was accepted.
	AlertAs string `json:"alert_as,omitempty"`
}

// Stats is a snapshot of a running engine.
type Stats struct {
	// Version is the daemon's build (internal/service fills it in).
	Version        string       `json:"version"`
	Started        time.Time    `json:"started"`
	Queues         []QueueStats `json:"queues"`
	Rules          []RuleStats  `json:"rules"`
	Default        RuleStats    `json:"default"`
	RulesInstalled bool         `json:"rules_installed"`
	// RulesIntact: the table is as the daemon left it (the guard's last
	// verify); RulesTampered counts foreign changes found, RulesRepaired
	// and RulesRepairFailed the re-installs by result. LastTamper and
	// LastTamperChange say when and what the last one was.
	RulesIntact       bool      `json:"rules_intact"`
	RulesTampered     uint64    `json:"rules_tampered"`
	RulesRepaired     uint64    `json:"rules_repaired"`
	RulesRepairFailed uint64    `json:"rules_repair_failed"`
	LastTamper        time.Time `json:"last_tamper,omitzero"`
	LastTamperChange  string    `json:"last_tamper_change,omitempty"`
	RulesGuardError   string    `json:"rules_guard_error,omitempty"`
	// QueueBypassed counts packets the steering rules sent to the queues
	// that the kernel let through without queueing them (queue.fail_open
	// with the queue or the socket buffer full; see bypass.go). Sampled
	// once a second.
	QueueBypassed uint64   `json:"queue_bypassed"`
	XDP           []string `json:"xdp_interfaces,omitempty"`
	// XDPDroppedSource and XDPDroppedFlow count packets the XDP program
	// dropped for a blocked source or flow.
	XDPDroppedSource uint64 `json:"xdp_dropped_source"`
	XDPDroppedFlow   uint64 `json:"xdp_dropped_flow"`
	Reloads          uint64 `json:"reloads"`
	Failures         uint64 `json:"reload_failures"`
	// LastReload is when the last reload attempt ended; LastReloadError is
	// empty when it succeeded.
	LastReload      time.Time `json:"last_reload,omitzero"`
	LastReloadError string    `json:"last_reload_error,omitempty"`
	BlockQueued     uint64    `json:"block_queued"`
	BlockDropped    uint64    `json:"block_dropped"`
	BlockErrors     uint64    `json:"block_errors"`
	LogSuppressed   uint64    `json:"log_suppressed"`
	// Record counts the decision and flow record's lines; nil without one.
	Record *RecordStats `json:"record,omitempty"`
	// Names is the dst_name/src_name binding table; nil when no policy
	// used them.
	Names *NameStats `json:"names,omitempty"`
}

// counters are one queue's hot-path counters. Only that queue's goroutine
// writes them; atomics make the scrape-time reads race-free and cost an
// uncontended locked add. The padding keeps queues off each other's cache
// lines.
type counters struct {
	bytes, accepted, dropped, rejected atomic.Uint64
	offloaded, marked, blocked         atomic.Uint64
	latCount, latSumNanos              atomic.Uint64
	idGaps                             atomic.Uint64 // see queueState.lastID
	alertDrop, alertReject             atomic.Uint64
	latBuckets                         [12]atomic.Uint64
	_                                  [64]byte
}

func (c *counters) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	c.latBuckets[i].Add(1)
	c.latCount.Add(1)
	c.latSumNanos.Add(uint64(d))
}

func (c *counters) snapshot(q uint16) QueueStats {
	h := Histogram{
		Count:   c.latCount.Load(),
		Sum:     time.Duration(c.latSumNanos.Load()).Seconds(),
		Bounds:  LatencyBuckets,
		Buckets: make([]uint64, len(LatencyBuckets)+1),
	}
	for i := range h.Buckets {
		h.Buckets[i] = c.latBuckets[i].Load()
	}
	return QueueStats{
		Queue: q, Bytes: c.bytes.Load(),
		Accepted: c.accepted.Load(), Dropped: c.dropped.Load(), Rejected: c.rejected.Load(),
		Offloaded: c.offloaded.Load(), Marked: c.marked.Load(),
		Blocked: c.blocked.Load(), Latency: h, AlertDrop: c.alertDrop.Load(), AlertReject: c.alertReject.Load(),
	}
}

// ruleCounter counts one rule name's hits, one padded slot per queue so
// that queues never share a cache line. A reload that keeps the name keeps
// the counter, so the metric stays monotonic.
type ruleCounter struct {
	name, action string
	perQueue     []paddedCount
	// kernel holds what the kernel decided for the rule in generations of
	// the table that a reload has replaced (their counters went with them).
	kernel atomic.Uint64
}

type paddedCount struct {
	n atomic.Uint64
	_ [56]byte
}

func newRuleCounter(name, action string, queues int) *ruleCounter {
	return &ruleCounter{name: name, action: action, perQueue: make([]paddedCount, queues)}
}

func (r *ruleCounter) total() uint64 {
	var t uint64
	for i := range r.perQueue {
		t += r.perQueue[i].n.Load()
	}
	return t
}
