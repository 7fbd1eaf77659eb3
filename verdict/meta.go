package verdict

// Conntrack states as delivered in NFQA_CT_INFO (enum ip_conntrack_info in
// include/uapi/linux/netfilter/nf_conntrack_common.h).
const (
	CTEstablished      = 0 // IP_CT_ESTABLISHED
	CTRelated          = 1 // IP_CT_RELATED
	CTNew              = 2 // IP_CT_NEW
	CTEstablishedReply = 3 // IP_CT_ESTABLISHED_REPLY
	CTRelatedReply     = 4 // IP_CT_RELATED_REPLY
	CTUntracked        = 7 // IP_CT_UNTRACKED
)

// Meta is what the queue knows about a packet besides its bytes. Fields the
// kernel did not send are zero with their Has flag false.
type Meta struct {
	Queue       uint16
	Hook        uint8
	InIf, OutIf uint32 // interface indexes, 0 when unknown
	Mark        uint32
	UID, GID    uint32
	HasMark     bool
	HasUID      bool
	HasGID      bool
	HasCT       bool  // CTState is valid; false means no conntrack entry (invalid)
	CTState     uint8 // IP_CT_* (CTNew, CTEstablished, ...)
}

// ctBit returns the CTStates bit the packet's conntrack state falls in.
func (m *Meta) ctBit() CTStates {
	if !m.HasCT {
		return CTStateInvalid
	}
	switch m.CTState {
	case CTNew:
		return CTStateNew
	case CTEstablished, CTEstablishedReply:
		return CTStateEstablished
	case CTRelated, CTRelatedReply:
		return CTStateRelated
	case CTUntracked:
		return CTStateUntracked
	}
	return CTStateInvalid
}
