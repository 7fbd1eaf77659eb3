package l7

import "encoding/binary"

// HelloBufferSize bounds the handshake bytes a HelloBuffer collects. A
// ClientHello larger than this is reported as TooLarge rather than
// buffered further: memory per flow stays fixed under hostile traffic, and
// the pipeline leaves such a flow to Policy.L7Undecided.
const HelloBufferSize = 16 << 10

// HelloBuffer collects a TLS ClientHello that spans several TCP segments
// or several TLS records, for one direction of one flow. The flow table owns
// it (about 16.5 KiB, so allocate it only for flows whose first segment
// returned NeedMore from TLSServerName) and feeds it every client segment
// until Add returns something other than NeedMore.
//
// Segments are placed by TCP sequence number. Retransmitted bytes already
// held are skipped (the first copy wins, as in the Linux receiver); a
// segment after a gap is not consumed (the pipeline drops it, so that the
// sender retransmits it in order), since only in-order bytes can be parsed.
// Record headers are stripped as bytes arrive, so the buffer holds only the
// handshake message, whichever way the sender cut it into records.
type HelloBuffer struct {
	buf     [HelloBufferSize]byte // handshake message bytes, record headers removed
	n       int
	next    uint32 // sequence number of the next expected byte
	started bool
	hdr     [tlsRecordHeaderLen]byte // partial record header
	hdrN    int
	rec     int // bytes left in the current record's body
	status  Status
	gap     bool // the last Add came after bytes not seen yet
	name    [MaxNameLen]byte
	nameLen int
}

// Reset empties h for reuse by another flow.
func (h *HelloBuffer) Reset() {
	h.n, h.next, h.started, h.hdrN, h.rec, h.status, h.nameLen, h.gap = 0, 0, false, 0, 0, Unset, 0, false
}

// Gap reports whether the last Add came after bytes not seen yet.
func (h *HelloBuffer) Gap() bool { return h.gap }

// Scratch returns the buffer's storage, for a flow that turned out not
// to be TLS: the pipeline keeps one pool of these buffers for
// ClientHellos and for the DNS and HTTP messages it follows over TCP.
// Reset the buffer before it holds a ClientHello again.
func (h *HelloBuffer) Scratch() *[HelloBufferSize]byte { return &h.buf }

// Status returns the result of the last Add.
func (h *HelloBuffer) Status() Status { return h.status }

// ServerName returns the lowercased server name once Add returned Found.
// The slice points into h.
func (h *HelloBuffer) ServerName() []byte { return h.name[:h.nameLen] }

// Add feeds the payload of one TCP segment with sequence number seq and
// returns NeedMore until the ClientHello is complete; then Found (see
// ServerName), Absent, NotProtocol or Malformed, which stay the
// answer for later calls. It never allocates.
func (h *HelloBuffer) Add(seq uint32, seg []byte) Status {
	if h.status != Unset && h.status != NeedMore {
		return h.status
	}
	if !h.started {
		h.started, h.next = true, seq
	}
	d := int64(int32(seq - h.next))
	h.gap = d > 0
	if d > 0 {
		h.status = NeedMore // gap: wait for the missing bytes
		return h.status
	}
	if -d >= int64(len(seg)) {
		h.status = NeedMore // pure retransmission
		return h.status
	}
	seg = seg[-d:]
	h.next += uint32(len(seg))
	h.status = h.consume(seg)
	return h.status
}

// consume runs the record layer over in-order bytes, appending record bodies
// to the handshake buffer, then checks whether the ClientHello is complete.
func (h *HelloBuffer) consume(seg []byte) Status {
	for len(seg) > 0 {
		if h.rec == 0 {
			c := copy(h.hdr[h.hdrN:], seg)
			h.hdrN += c
			seg = seg[c:]
			if st := checkRecordHeader(h.hdr[:h.hdrN]); st != Found {
				if st == NotProtocol && h.n > 0 {
					st = Malformed // a later record that is not a handshake
				}
				if st != NeedMore {
					return st
				}
				continue
			}
			h.rec = int(binary.BigEndian.Uint16(h.hdr[3:5]))
			h.hdrN = 0
			continue
		}
		c := min(h.rec, len(seg))
		if h.n+c > len(h.buf) {
			return TooLarge // larger than any ClientHello we collect
		}
		copy(h.buf[h.n:], seg[:c])
		h.n += c
		h.rec -= c
		seg = seg[c:]
		if st := h.helloStatus(); st != NeedMore {
			return st // bytes after the ClientHello are not ours to judge
		}
	}
	return h.helloStatus()
}

// helloStatus parses the handshake message once all of it has arrived.
func (h *HelloBuffer) helloStatus() Status {
	if h.n >= 1 && h.buf[0] != tlsClientHello {
		return NotProtocol
	}
	if h.n < tlsHandshakeHeaderLen {
		return NeedMore
	}
	hlen := int(h.buf[1])<<16 | int(h.buf[2])<<8 | int(h.buf[3])
	if tlsHandshakeHeaderLen+hlen > len(h.buf) {
		return TooLarge
	}
	if h.n < tlsHandshakeHeaderLen+hlen {
		return NeedMore
	}
	name, st := clientHelloServerName(h.buf[tlsHandshakeHeaderLen:tlsHandshakeHeaderLen+hlen], h.name[:0])
	h.nameLen = len(name)
	return st
}
