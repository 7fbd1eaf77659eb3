package queue

// NFQNL_MSG_CONFIG messages. Binding sends one message that carries the
// command and every parameter, so the queue is configured before the
// kernel acknowledges it:
//
//	nlmsghdr  type NFQNL_MSG_CONFIG, flags NLM_F_REQUEST|NLM_F_ACK
//	nfgenmsg  AF_UNSPEC, NFNETLINK_V0, res_id = queue
//	NFQA_CFG_CMD          struct nfqnl_msg_config_cmd { u8 command; u8 _pad; be16 pf; }
//	NFQA_CFG_PARAMS       struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } (packed)
//	NFQA_CFG_QUEUE_MAXLEN be32
//	NFQA_CFG_MASK         be32  which flags to change
//	NFQA_CFG_FLAGS        be32  their values
//
// NFQNL_CFG_CMD_PF_BIND and PF_UNBIND are not sent: kernels since 3.8
// ignore them.

type msgBuilder struct{ b []byte }

func newConfigMsg(queue uint16, seq uint32) *msgBuilder {
	m := &msgBuilder{b: make([]byte, msgHdrLen, 128)}
	ne.PutUint16(m.b[4:], msgConfig)
	ne.PutUint16(m.b[6:], nlmFRequest|nlmFAck)
	ne.PutUint32(m.b[8:], seq)
	m.b[16] = 0 // AF_UNSPEC
	m.b[17] = nfnetlinkV0
	be.PutUint16(m.b[18:], queue)
	return m
}

func (m *msgBuilder) attr(t uint16, v []byte) *msgBuilder {
	off := len(m.b)
	m.b = append(m.b, make([]byte, align4(nlaHdrLen+len(v)))...)
	ne.PutUint16(m.b[off:], uint16(nlaHdrLen+len(v)))
	ne.PutUint16(m.b[off+2:], t)
	copy(m.b[off+nlaHdrLen:], v)
	return m
}

func (m *msgBuilder) u32(t uint16, v uint32) *msgBuilder {
	var b [4]byte
	be.PutUint32(b[:], v)
	return m.attr(t, b[:])
}

func (m *msgBuilder) bytes() []byte {
	ne.PutUint32(m.b[0:], uint32(len(m.b)))
	return m.b
}

// bindMsg binds queue and applies c's parameters in one message.
func bindMsg(queue uint16, seq uint32, c *Config) []byte {
	var params [cfgParamsLen]byte
	be.PutUint32(params[0:], c.CopyRange)
	params[4] = uint8(c.CopyMode) - 1 // CopyNone..CopyPacket -> NFQNL_COPY_NONE..PACKET
	return newConfigMsg(queue, seq).
		attr(cfgAttrCmd, []byte{cfgCmdBind, 0, 0, 0}).
		attr(cfgAttrParams, params[:]).
		u32(cfgAttrMaxLen, c.MaxLen).
		u32(cfgAttrMask, cfgFlagsAllKnown).
		u32(cfgAttrFlags, uint32(c.Flags)).
		bytes()
}

// unbindMsg unbinds queue.
func unbindMsg(queue uint16, seq uint32) []byte {
	return newConfigMsg(queue, seq).attr(cfgAttrCmd, []byte{cfgCmdUnbind, 0, 0, 0}).bytes()
}

// maxLenMsg sets queue's length limit to n, leaving everything else.
func maxLenMsg(queue uint16, seq uint32, n uint32) []byte {
	return newConfigMsg(queue, seq).u32(cfgAttrMaxLen, n).bytes()
}
