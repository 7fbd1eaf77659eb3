package queue

import "time"

// Attr is a bitmask of the optional attributes present in a Packet.
type Attr uint32

// Attributes a queued packet may carry.
const (
	AttrMark Attr = 1 << iota
	AttrTimestamp
	AttrInIf
	AttrOutIf
	AttrPhysInIf
	AttrPhysOutIf
	AttrHwAddr
	AttrPayload
	AttrCT      // conntrack attributes (Config.Flags & FlagConntrack)
	AttrCTInfo  // CTState is valid
	AttrCapLen  // the copy was truncated; OrigLen is the packet's length
	AttrSkbInfo // SkbInfo is valid
	AttrUID
	AttrGID
	AttrSecCtx
	AttrVLAN
	AttrL2Hdr
	AttrPriority
)

// SkbInfo flags (NFQA_SKB_*).
const (
	// SkbCsumNotReady: the checksum is to be filled in by the device
	// (CHECKSUM_PARTIAL); the packet looks corrupt but is not.
	SkbCsumNotReady uint32 = 1 << 0
	// SkbGSO: the packet is a GSO super-packet larger than the MTU.
	SkbGSO uint32 = 1 << 1
	// SkbCsumNotVerified: nobody validated the checksum yet.
	SkbCsumNotVerified uint32 = 1 << 2
)

// Packet is one queued packet: a value the caller owns and the engine fills
// in place. Payload points into the engine's receive buffer and is valid
// only until the handler returns.
type Packet struct {
	Queue   uint16 // queue number the packet came from
	ID      uint32 // the kernel's packet id, unique within the queue
	HwProto uint16 // link-layer protocol (ETH_P_IP, ETH_P_IPV6)
	Hook    uint8  // netfilter hook (NF_INET_*)

	Mark                             uint32
	InIf, OutIf, PhysInIf, PhysOutIf uint32 // interface indexes
	UID, GID                         uint32 // of the local socket, FlagUIDGID
	CTState                          uint8  // enum ip_conntrack_info (IP_CT_*)
	CTID                             uint32 // conntrack id, FlagConntrack
	SkbInfo                          uint32 // SkbCsumNotReady | SkbGSO | ...
	Priority                         uint32 // skb->priority
	CapLen                           uint32 // bytes captured (len(Payload))
	OrigLen                          uint32 // the packet's full length
	Timestamp                        time.Time
	HwAddr                           [8]byte // source link-layer address
	HwAddrLen                        uint8
	Has                              Attr

	// Received is when the loop read the packet's batch from the socket:
	// one clock read per receive, shared by the batch, so a handler need
	// not read the clock for every packet.
	Received time.Time

	Payload []byte // network header on; valid until the handler returns
	SecCtx  []byte // security context; valid until the handler returns

	verdict    Verdict
	toQueue    uint16
	bypass     bool
	setMark    bool
	hasPayload bool
	newMark    uint32
	newPayload []byte
}

// Handler decides one packet by calling one of its verdict methods. A
// handler that sets no verdict leaves the packet to Config.DefaultVerdict.
// It must not keep p or p.Payload after it returns.
type Handler func(p *Packet)

// reset clears p for the next packet without allocating.
func (p *Packet) reset() { *p = Packet{} }
