package verdict

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/qguard/qguard/verdict/l7"
	"github.com/qguard/qguard/verdict/packet"
)

// FlowConfig sizes a flow table. A nil *FlowConfig or zero fields mean the
// defaults below.
type FlowConfig struct {
	// Capacity is the most flows held; rounded up to a power of two times
	// flowWays. Default DefaultFlowCapacity.
	Capacity int
	// Idle timeouts by protocol; ClosingTimeout applies to TCP flows after a
	// FIN or RST.
	TCPTimeout, UDPTimeout, OtherTimeout, ClosingTimeout time.Duration
	// HelloBuffers bounds how many flows at once may be collecting a TLS
	// ClientHello that spans several segments. Default DefaultHelloBuffers.
	HelloBuffers int
	// Streams bounds how many TCP flows at once may have their DNS
	// messages or HTTP requests followed one by one (about 48 bytes each).
	// Default: Capacity, at most DefaultStreams.
	Streams int
}

// DefaultFlowConfig returns the defaults a zero field means, spelled out
// (Streams stays 0: it follows Capacity). The configuration file's flows
// section is this when it sets nothing.
func DefaultFlowConfig() *FlowConfig {
	return &FlowConfig{Capacity: DefaultFlowCapacity, TCPTimeout: DefaultTCPTimeout, UDPTimeout: DefaultUDPTimeout,
		OtherTimeout: DefaultOtherTimeout, ClosingTimeout: DefaultClosingTimeout, HelloBuffers: DefaultHelloBuffers}
}

// Flow table defaults.
const (
	DefaultFlowCapacity   = 1 << 18
	DefaultTCPTimeout     = 10 * time.Minute
	DefaultUDPTimeout     = time.Minute
	DefaultOtherTimeout   = 30 * time.Second
	DefaultClosingTimeout = 10 * time.Second
	DefaultHelloBuffers   = 1024
	DefaultStreams        = 1<<16 - 1
)

// FlowStats are a flow table's counters.
type FlowStats struct {
	Capacity    int
	Size        int    // flows held, including expired ones not yet swept
	Inserts     uint64 // new flows
	Evictions   uint64 // live flows replaced because their bucket was full
	Expirations uint64 // flows removed after their idle timeout
	HelloFull   uint64 // ClientHellos or message heads not collected because every buffer was busy
	StreamsFull uint64 // TCP flows not followed message by message because every stream was busy
	QUICFull    uint64 // QUIC Initials of flows that found every QUICHello busy (too large)
}

// FlowTable remembers flows and their decisions. It is a fixed array of
// buckets of flowWays entries allocated once: a flow hashes to two
// buckets and, when both are full, replaces their least recently seen
// flow. Memory is therefore fixed whatever the traffic, and a random-tuple
// flood evicts flows (counted) instead of growing the table. Expired flows
// are reclaimed when their bucket is visited and by a slow sweep.
//
// Each bucket starts with a 64-byte header (hash tags and last-seen times)
// so that finding a flow, an idle slot or the eviction victim reads one
// cache line; the flow's key is read only on a tag hit.
//
// A FlowTable belongs to one goroutine; Stats may be called from any.
type FlowTable struct {
	buckets  []flowBucket
	mask     uint64
	seed     uint64
	timeouts [4]uint32 // ms by class: tcp, udp, other, closing
	sweep    uint64
	hellos   helloPool
	quics    quicPool
	streams  streamPool

	size, inserts, evictions, expirations atomic.Int64
	streamsFull                           atomic.Uint64
}

const flowWays = 8

// Timeout classes, kept in the low two bits of a tag.
const (
	classTCP = iota
	classUDP
	classOther
	classClosing
	classMask = 3
	tagSet    = 4 // always set in a used tag, so 0 means empty
)

type flowBucket struct {
	tags [flowWays]uint32 // hash bits | tagSet | class; 0 means empty
	last [flowWays]uint32 // last packet, ms on the pipeline's clock (wraps after 49 days)
	e    [flowWays]flowEntry
}

// flowEntry is one flow's state besides its tag and time.
type flowEntry struct {
	key flowKey
	gen uint32 // policy generation the decision belongs to
	// rule is the decided rule or RuleDefault (flowDecided), the decision
	// of the last message (flowPerMsg), or, while neither and flowISN is
	// set, the sequence number of the initiator's first data byte.
	rule   int32
	stream uint16 // 1 + index of the flow's l7Stream; 0 for none
	hello  uint16 // 1 + index of the flow's HelloBuffer; 0 for none
	quic   uint16 // 1 + index of the flow's QUICHello; 0 for none
	pkts   uint8  // payload packets evaluated while undecided
	flags  uint8
}

const (
	flowAIsInit = 1 << iota // endpoint A sent the first packet
	flowDecided             // rule holds the flow's decision for generation gen
)

// Flags above the flowNoL7 bits.
const (
	// flowPerMsg: the flow carries messages that are judged one by one (DNS,
	// HTTP requests); rule holds the last one's decision, which covers the
	// packets continuing that message.
	flowPerMsg = 1 << 5
	// flowISN: rule holds the initiator's SYN sequence number plus one, so
	// an L7 reassembler starts at the stream's first byte even when a later
	// segment arrives first.
	flowISN = 1 << 6
	// flowData: the initiator's data has been read in order before, so
	// the stream no longer starts at the ISN.
	flowData = 1 << 7
)

// flowNoL7Shift places, above the bits above, one bit per L7 name kind
// (needDNS, needSNI, needHost shifted left by it): the flow's initiator
// sent data that settles the kind (not this protocol, malformed, or a
// complete message without the name), so rules needing that name are ruled
// out for the flow at once instead of waiting for packets that cannot
// bring it. The bits describe the flow's data, not the policy: a Swap
// keeps them.
const flowNoL7Shift = 2

// FlowEntrySize is the memory one flow takes in the table, its share of the
// bucket header included.
const FlowEntrySize = int(unsafe.Sizeof(flowBucket{})) / flowWays

// MaxFlowCapacity is the largest flow table a configuration may ask for
// (flows.max): 16M flows, 1 GiB. Beyond it a typo or a stray zero would
// allocate memory the machine does not have.
const MaxFlowCapacity = 1 << 24

// FlowTableBytes is the memory NewFlowTable allocates for capacity flows
// (0: the default), after rounding up. It saturates at 2^54 flows.
func FlowTableBytes(capacity int) uint64 {
	return uint64(flowBuckets(min(capacity, 1<<54))) * uint64(unsafe.Sizeof(flowBucket{}))
}

// flowBuckets is how many buckets hold capacity flows: a power of two.
func flowBuckets(capacity int) int {
	if capacity <= 0 {
		capacity = DefaultFlowCapacity
	}
	nb := max(1, (capacity+flowWays-1)/flowWays)
	return 1 << bits.Len(uint(nb-1))
}

// NewFlowTable allocates a flow table.
func NewFlowTable(c *FlowConfig) *FlowTable {
	var cfg FlowConfig
	if c != nil {
		cfg = *c
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
		*v = min(*v, 24*time.Hour)
	}
	def(&cfg.TCPTimeout, DefaultTCPTimeout)
	def(&cfg.UDPTimeout, DefaultUDPTimeout)
	def(&cfg.OtherTimeout, DefaultOtherTimeout)
	def(&cfg.ClosingTimeout, DefaultClosingTimeout)
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultFlowCapacity
	}
	if cfg.HelloBuffers <= 0 {
		cfg.HelloBuffers = DefaultHelloBuffers
	}
	nb := flowBuckets(cfg.Capacity)
	ms := func(d time.Duration) uint32 { return uint32(d / time.Millisecond) }
	t := &FlowTable{
		buckets: make([]flowBucket, nb),
		mask:    uint64(nb - 1),
		seed:    rand.Uint64(),
		timeouts: [4]uint32{ms(cfg.TCPTimeout), ms(cfg.UDPTimeout),
			ms(cfg.OtherTimeout), ms(cfg.ClosingTimeout)},
	}
	t.hellos.init(min(cfg.HelloBuffers, 65535))
	t.quics.init(DefaultQUICBuffers)
	if cfg.Streams <= 0 {
		cfg.Streams = min(cfg.Capacity, DefaultStreams)
	}
	t.streams.init(min(cfg.Streams, DefaultStreams))
	return t
}

// Stats returns the table's counters.
func (t *FlowTable) Stats() FlowStats {
	return FlowStats{
		Capacity:    len(t.buckets) * flowWays,
		Size:        int(t.size.Load()),
		Inserts:     uint64(t.inserts.Load()),
		Evictions:   uint64(t.evictions.Load()),
		Expirations: uint64(t.expirations.Load()),
		HelloFull:   t.hellos.full.Load(),
		StreamsFull: t.streamsFull.Load(),
		QUICFull:    t.quics.full.Load(),
	}
}

func classOf(proto uint8) uint32 {
	switch proto {
	case packet.ProtoTCP:
		return classTCP
	case packet.ProtoUDP, packet.ProtoUDPLite:
		return classUDP
	}
	return classOther
}

func (t *FlowTable) expired(b *flowBucket, i int, now uint32) bool {
	return now-b.last[i] > t.timeouts[b.tags[i]&classMask]
}

// get returns k's entry, inserting one if the flow is new (found false).
// A new entry is zero but for its key. now is in nanoseconds; closing moves
// a TCP flow to the closing timeout.
//
// A flow may live in either of two buckets (two-choice hashing), and a new
// flow goes to the emptier one. Filling a table to capacity then loses 4%
// of the flows to evictions instead of 14% with one bucket, and none at
// half load, at the price of a second cache line for new flows and for
// half of the lookups.
func (t *FlowTable) get(k *flowKey, h uint64, now int64, closing bool) (e *flowEntry, found bool) {
	tag := (uint32(h>>32) | tagSet) &^ classMask
	ms := uint32(now / 1e6)
	b1 := &t.buckets[h&t.mask]
	if e, ok := t.find(b1, k, tag, ms, closing); ok {
		return e, true
	}
	b2 := &t.buckets[altBucket(h)&t.mask]
	if b2 != b1 {
		if e, ok := t.find(b2, k, tag, ms, closing); ok {
			return e, true
		}
	}
	// The emptier of the two buckets takes the flow: balancing the load
	// keeps buckets from overflowing while the table has room.
	b := b1
	if b2 != b1 && used(b2) < used(b1) {
		b = b2
	}
	slot := t.freeSlot(b, ms)
	if slot < 0 && b2 != b1 {
		// Both look full, but the other may hold an expired flow.
		if b == b1 {
			b = b2
		} else {
			b = b1
		}
		slot = t.freeSlot(b, ms)
	}
	if slot < 0 {
		// Both full: evict the least recently seen flow of the two.
		o1, o2 := oldest(b1, ms), oldest(b2, ms)
		b, slot = b1, o1
		if ms-b2.last[o2] > ms-b1.last[o1] {
			b, slot = b2, o2
		}
		t.remove(b, slot)
		t.evictions.Add(1)
	}
	class := classOf(k.proto())
	if closing && class == classTCP {
		class = classClosing
	}
	b.tags[slot] = tag | class
	b.last[slot] = ms
	b.e[slot] = flowEntry{key: *k}
	t.size.Add(1)
	t.inserts.Add(1)
	return &b.e[slot], false
}

// altBucket derives a flow's alternate bucket from hash bits its home
// bucket and tag do not use.
func altBucket(h uint64) uint64 {
	return (h >> 20) * 0x9e3779b97f4a7c15 >> 20
}

// find looks k up in b, refreshing its time; an expired entry is removed.
func (t *FlowTable) find(b *flowBucket, k *flowKey, tag, ms uint32, closing bool) (*flowEntry, bool) {
	for i := range b.tags {
		if b.tags[i]&^classMask == tag && b.e[i].key == *k {
			if t.expired(b, i, ms) {
				t.remove(b, i)
				t.expirations.Add(1)
				return nil, false
			}
			b.last[i] = ms
			if closing {
				b.tags[i] = tag | classClosing
			}
			return &b.e[i], true
		}
	}
	return nil, false
}

// freeSlot returns an empty slot of b, reclaiming an expired one if need
// be, or -1.
func (t *FlowTable) freeSlot(b *flowBucket, ms uint32) int {
	for i := range b.tags {
		if b.tags[i] == 0 {
			return i
		}
	}
	for i := range b.tags {
		if t.expired(b, i, ms) {
			t.remove(b, i)
			t.expirations.Add(1)
			return i
		}
	}
	return -1
}

// used counts b's occupied slots.
func used(b *flowBucket) int {
	n := 0
	for _, tg := range b.tags {
		if tg != 0 {
			n++
		}
	}
	return n
}

func oldest(b *flowBucket, ms uint32) int {
	o := 0
	for i := 1; i < flowWays; i++ {
		if ms-b.last[i] > ms-b.last[o] {
			o = i
		}
	}
	return o
}

func (t *FlowTable) remove(b *flowBucket, i int) {
	if b.e[i].hello != 0 {
		t.hellos.put(b.e[i].hello)
	}
	if b.e[i].quic != 0 {
		t.quics.put(b.e[i].quic)
	}
	if b.e[i].stream != 0 {
		t.streams.put(t, b.e[i].stream)
	}
	b.tags[i] = 0
	b.e[i].hello, b.e[i].quic, b.e[i].stream = 0, 0, 0
	t.size.Add(-1)
}

// tick reclaims the expired flows of the next bucket in turn. Decide calls
// it every 16th packet: expiry on lookup keeps decisions right, the sweep
// only returns idle slots and keeps Size honest.
func (t *FlowTable) tick(now int64) {
	b := &t.buckets[t.sweep&t.mask]
	t.sweep++
	ms := uint32(now / 1e6)
	for i := range b.tags {
		if b.tags[i] != 0 && t.expired(b, i, ms) {
			t.remove(b, i)
			t.expirations.Add(1)
		}
	}
}

// slots hands out the 1-based indexes (0: none) by which flow entries
// refer to the buffers of a pool, up to its bound, reusing freed ones
// first. Its pools (helloPool, streamPool, quicPool) keep the buffers.
type slots struct {
	free []uint16 // freed indexes
	n    int      // indexes handed out so far
	max  int
}

func (s *slots) init(n int) {
	s.free, s.n, s.max = make([]uint16, 0, n), 0, n
}

// take returns a freed index, else a new one (fresh: its buffer does not
// exist yet), else 0 when all max are in use.
func (s *slots) take() (i uint16, fresh bool) {
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
		return i, false
	}
	if s.n < s.max {
		s.n++
		return uint16(s.n), true
	}
	return 0, false
}

func (s *slots) give(i uint16) { s.free = append(s.free, i) }

// helloPool lends HelloBuffers (16.5 KiB each) to the flows collecting a
// ClientHello that spans segments. Buffers are allocated on first need up to
// the bound and then reused, so a flood of half-sent ClientHellos costs at
// most the bound and leaves later flows without a buffer (counted in
// HelloFull; their server name then counts as absent).
type helloPool struct {
	slots
	bufs []*l7.HelloBuffer
	full atomic.Uint64
}

func (p *helloPool) init(n int) {
	p.slots.init(n)
	p.bufs = make([]*l7.HelloBuffer, 0, n)
}

// get returns a buffer index, or 0 when every buffer is in use.
func (p *helloPool) get() uint16 {
	i, fresh := p.take()
	switch {
	case fresh:
		p.bufs = append(p.bufs, new(l7.HelloBuffer))
	case i == 0:
		p.full.Add(1)
	}
	return i
}

func (p *helloPool) put(i uint16) {
	p.bufs[i-1].Reset()
	p.give(i)
}

func (p *helloPool) at(i uint16) *l7.HelloBuffer { return p.bufs[i-1] }
