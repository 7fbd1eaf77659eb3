package queue

// Verdict message layout (NFQNL_MSG_VERDICT and NFQNL_MSG_VERDICT_BATCH):
//
//	offset  size  field
//	     0    16  struct nlmsghdr   len, type, flags = NLM_F_REQUEST, seq 0, pid 0
//	    16     4  struct nfgenmsg   AF_UNSPEC, NFNETLINK_V0, res_id = queue (be16)
//	    20     4  nlattr            len 12, NFQA_VERDICT_HDR
//	    24     4  verdict           be32 (NF_ACCEPT, NF_QUEUE_NR(n) | bypass, ...)
//	    28     4  id                be32 (batch: every queued id <= this one)
//	    32     8  nlattr + be32     NFQA_MARK, optional
//	 32|40   4+n  nlattr + bytes    NFQA_PAYLOAD, optional, padded to 4
const (
	offType    = 4
	offVerdict = 24
	offID      = 28
	offMark    = 36
	verdictLen = 32
	markLen    = 8
)

// encoder appends verdict messages to one contiguous buffer that goes out in
// a single sendmsg. Each message is a copy of a prebuilt template patched in
// place, and in batch mode a verdict that continues the previous message's
// run patches that message instead of adding one.
type encoder struct {
	buf  []byte
	tmpl [verdictLen + markLen]byte
	mode VerdictMode

	// The last message, when a following packet may extend it.
	last        int // offset in buf, -1 if none
	lastVerdict uint32
	lastMark    uint32
	lastHasMark bool
	lastID      uint32

	msgs, pkts, batches int // since the last reset
}

func newEncoder(queue uint16, mode VerdictMode, capacity int) *encoder {
	e := &encoder{buf: make([]byte, 0, capacity), mode: mode, last: -1}
	t := e.tmpl[:]
	ne.PutUint16(t[offType:], msgVerdict)
	ne.PutUint16(t[6:], nlmFRequest)
	t[16] = 0 // AF_UNSPEC
	t[17] = nfnetlinkV0
	be.PutUint16(t[18:], queue)
	ne.PutUint16(t[20:], nlaHdrLen+verdictHdrLen)
	ne.PutUint16(t[22:], attrVerdictHdr)
	ne.PutUint16(t[32:], nlaHdrLen+4)
	ne.PutUint16(t[34:], attrMark)
	return e
}

// reset empties the buffer after a send.
func (e *encoder) reset() {
	e.buf = e.buf[:0]
	e.last = -1
	e.msgs, e.pkts, e.batches = 0, 0, 0
}

// size returns the bytes a verdict with a payload of n bytes adds, at most.
func verdictSize(hasMark bool, payload int, hasPayload bool) int {
	n := verdictLen
	if hasMark {
		n += markLen
	}
	if hasPayload {
		n += nlaHdrLen + align4(payload)
	}
	return n
}

// add appends the verdict for packet id. payload, when hasPayload, replaces
// the packet; len(payload) must be at most maxAttrValue.
func (e *encoder) add(id, verdict, mark uint32, hasMark bool, payload []byte, hasPayload bool) {
	if e.mode == Batch && !hasPayload && e.last >= 0 && verdict == e.lastVerdict &&
		hasMark == e.lastHasMark && (!hasMark || mark == e.lastMark) && int32(id-e.lastID) > 0 {
		// Every packet between the run's first id and id was verdicted in
		// order by this loop, so a batch verdict up to id covers exactly the
		// run: earlier messages in the buffer have dequeued older packets.
		m := e.buf[e.last:]
		if ne.Uint16(m[offType:]) != msgVerdictBatch {
			ne.PutUint16(m[offType:], msgVerdictBatch)
			e.batches++
		}
		be.PutUint32(m[offID:], id)
		e.lastID = id
		e.pkts++
		return
	}
	off := len(e.buf)
	n := verdictSize(hasMark, len(payload), hasPayload)
	e.buf = grow(e.buf, n)
	m := e.buf[off : off+n]
	if hasMark {
		copy(m, e.tmpl[:verdictLen+markLen])
		be.PutUint32(m[offMark:], mark)
	} else {
		copy(m, e.tmpl[:verdictLen])
	}
	ne.PutUint32(m[0:], uint32(n))
	be.PutUint32(m[offVerdict:], verdict)
	be.PutUint32(m[offID:], id)
	if hasPayload {
		a := m[n-nlaHdrLen-align4(len(payload)):]
		ne.PutUint16(a[0:], uint16(nlaHdrLen+len(payload)))
		ne.PutUint16(a[2:], attrPayload)
		c := copy(a[nlaHdrLen:], payload)
		clear(a[nlaHdrLen+c:])
		e.last = -1
	} else {
		e.last, e.lastVerdict, e.lastMark, e.lastHasMark, e.lastID = off, verdict, mark, hasMark, id
	}
	e.msgs++
	e.pkts++
}

// grow extends b by n bytes, reallocating only when the capacity is short
// (a replaced payload larger than any before).
func grow(b []byte, n int) []byte {
	if len(b)+n <= cap(b) {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}
