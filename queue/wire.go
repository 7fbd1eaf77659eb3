package queue

// Wire format constants. Sources:
//
//	include/uapi/linux/netlink.h                    (nlmsghdr, nlattr)
//	include/uapi/linux/netfilter/nfnetlink.h        (nfgenmsg, subsystems)
//	include/uapi/linux/netfilter/nfnetlink_queue.h  (NFQNL_*, NFQA_*)
//	include/uapi/linux/netfilter.h                  (NF_* verdicts)
//
// A message from or to the queue subsystem is
//
//	 0               1               2               3
//	+---------------+---------------+---------------+---------------+
//	|                   nlmsg_len (host order)                      |  struct nlmsghdr
//	+-------------------------------+-------------------------------+
//	| nlmsg_type = 3<<8 | NFQNL_MSG | nlmsg_flags                   |
//	+-------------------------------+-------------------------------+
//	|                   nlmsg_seq                                   |
//	+---------------------------------------------------------------+
//	|                   nlmsg_pid                                   |
//	+---------------+---------------+-------------------------------+
//	| nfgen_family  | version = 0   | res_id = queue (big endian)   |  struct nfgenmsg
//	+---------------+---------------+-------------------------------+
//	| nla_len       (host order)    | nla_type      (host order)    |  attributes, each
//	+-------------------------------+-------------------------------+  padded to 4 bytes
//	| value (NFQA_* values are big endian unless noted)  ...        |
//
// nlmsghdr and nlattr fields are host order (binary.NativeEndian); the
// values inside NFQA_* attributes are big endian.
const (
	nlmsgHdrLen  = 16 // sizeof(struct nlmsghdr)
	nfgenHdrLen  = 4  // sizeof(struct nfgenmsg)
	nlaHdrLen    = 4  // sizeof(struct nlattr)
	msgHdrLen    = nlmsgHdrLen + nfgenHdrLen
	nlaTypeMask  = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nlmsgError   = 0x2    // NLMSG_ERROR
	nlmsgDone    = 0x3    // NLMSG_DONE
	nlmFRequest  = 0x1    // NLM_F_REQUEST
	nlmFAck      = 0x4    // NLM_F_ACK
	nfnetlinkV0  = 0      // NFNETLINK_V0
	subsysQueue  = 3      // NFNL_SUBSYS_QUEUE
	maxAttrValue = 0xffff - nlaHdrLen
)

// enum nfqnl_msg_types
const (
	msgPacket       = subsysQueue<<8 | 0 // NFQNL_MSG_PACKET
	msgVerdict      = subsysQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgConfig       = subsysQueue<<8 | 2 // NFQNL_MSG_CONFIG
	msgVerdictBatch = subsysQueue<<8 | 3 // NFQNL_MSG_VERDICT_BATCH
)

// enum nfqnl_attr_type
const (
	attrPacketHdr   = 1  // struct nfqnl_msg_packet_hdr
	attrVerdictHdr  = 2  // struct nfqnl_msg_verdict_hdr
	attrMark        = 3  // __be32
	attrTimestamp   = 4  // struct nfqnl_msg_packet_timestamp
	attrIfIn        = 5  // __be32 ifindex
	attrIfOut       = 6  // __be32 ifindex
	attrIfPhysIn    = 7  // __be32 ifindex
	attrIfPhysOut   = 8  // __be32 ifindex
	attrHwAddr      = 9  // struct nfqnl_msg_packet_hw
	attrPayload     = 10 // opaque
	attrCT          = 11 // nested, nfnetlink_conntrack.h CTA_*
	attrCTInfo      = 12 // __be32 enum ip_conntrack_info
	attrCapLen      = 13 // __be32 original length when the copy is truncated
	attrSkbInfo     = 14 // __be32 NFQA_SKB_*
	attrExp         = 15 // nested
	attrUID         = 16 // __be32
	attrGID         = 17 // __be32
	attrSecCtx      = 18 // string
	attrVLAN        = 19 // nested
	attrL2Hdr       = 20 // bytes
	attrPriority    = 21 // __be32 skb->priority
	attrMaxKnown    = 21
	ctaID           = 12                 // CTA_ID inside NFQA_CT, __be32
	packetHdrLen    = 7                  // struct nfqnl_msg_packet_hdr, packed
	timestampLen    = 16                 // struct nfqnl_msg_packet_timestamp
	hwAddrHdrLen    = 4                  // hw_addrlen + _pad before hw_addr[8]
	verdictHdrLen   = 8                  // struct nfqnl_msg_verdict_hdr
	cfgCmdLen       = 4                  // struct nfqnl_msg_config_cmd
	cfgParamsLen    = 5                  // struct nfqnl_msg_config_params, packed
	nfqMaxCopyRange = 0xffff - nlaHdrLen // NFQNL_MAX_COPY_RANGE
)

// enum nfqnl_attr_config and enum nfqnl_msg_config_cmds
const (
	cfgAttrCmd       = 1
	cfgAttrParams    = 2
	cfgAttrMaxLen    = 3
	cfgAttrMask      = 4
	cfgAttrFlags     = 5
	cfgCmdBind       = 1
	cfgCmdUnbind     = 2
	cfgCmdPFBind     = 3
	cfgCmdPFUnbind   = 4
	cfgFlagsAllKnown = 0x1f // NFQA_CFG_F_FAIL_OPEN .. NFQA_CFG_F_SECCTX
)

// include/uapi/linux/netfilter.h
const (
	nfDrop            = 0
	nfAccept          = 1
	nfQueue           = 3
	nfRepeat          = 4
	nfQueueBypassFlag = 0x00008000 // NF_VERDICT_FLAG_QUEUE_BYPASS
)

func align4(n int) int { return (n + 3) &^ 3 }
