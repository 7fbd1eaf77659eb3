package l7

import "encoding/binary"

// A QUIC client opens a connection with Initial packets (RFC 9000 17.2.2,
// RFC 9369 3.2), several of which may be coalesced in one UDP datagram:
//
//	byte 0:   1 | fixed(1) | type(2) | reserved(2) | pn length - 1 (2)   (low 4 bits protected)
//	version(4)                1: Initial type 0;  0x6b3343cf (v2): Initial type 1
//	DCID length(1) | DCID     at most 20 bytes in v1 and v2
//	SCID length(1) | SCID
//	token length(varint) | token                  Initial only
//	length(varint)            of packet number and payload
//	packet number(1..4)       protected
//	payload                   AES-128-GCM; frames, among them CRYPTO(offset, length, data)
//
// The CRYPTO frames carry the TLS ClientHello, split and reordered as the
// client likes, across packets and datagrams.
const (
	quicLongHeader   = 0x80
	quicMinLong      = 7 // byte 0, version, DCID length, SCID length
	quicMaxPacket    = 4096
	quicMinDatagram  = 1200 // RFC 9000 14.1: clients pad datagrams with Initials to this
	QUICMaxInitials  = 32   // Initial packets opened per flow before giving up
	quicMaxKeys      = 8    // key derivations per flow: original DCID, other version, Retry, new connections
	quicMaxRetries   = 64   // opens at other packet numbers per flow (see open)
	quicMaxVarint    = 1<<62 - 1
	quicFramePadding = 0x00
	quicFramePing    = 0x01
	quicFrameAck     = 0x02
	quicFrameAckECN  = 0x03
	quicFrameCrypto  = 0x06
	quicFrameClose   = 0x1c
)

// QUICHello extracts the TLS server name from the client's QUIC Initial
// packets of one flow (one direction of one UDP 5-tuple), versions 1 and
// 2. The flow table owns it (about 25 KiB: allocate it only for flows that
// reach a UDP port where QUIC is inspected) and feeds it every datagram
// the client sends; Feed never allocates after the first Initial of each
// QUIC connection (whose keys it derives then).
//
// It opens Initials the way a server does: keys from the Destination
// Connection ID of the first Initial, header protection removed, the AEAD
// tag checked (a packet that fails it is ignored, as the server ignores
// it), and CRYPTO frames reassembled by offset in any order. Bounds:
// QUICCryptoBufferSize bytes of CRYPTO data, QUICMaxInitials opened
// packets, quicMaxKeys connections per flow, Initial packets of at most
// quicMaxPacket bytes. Past a bound the answer is TooLarge.
//
// An Initial that opens with keys of a new Destination Connection ID
// (after a Retry, or a second connection on the same 5-tuple) starts the
// reassembly over: the answer is then about the newest connection.
type QUICHello struct {
	stream   cryptoStream
	keys     quicKeys
	kdf      quicKDF
	largest  int64 // largest packet number opened in this connection; -1 for none
	initials int   // Initial packets opened on the flow
	derived  int   // key derivations on the flow
	status   Status
	done     bool                    // see Done
	pns      [QUICMaxInitials]uint64 // packet numbers opened on the connection
	npns     int
	retries  int  // opens tried at other packet numbers, on the flow
	lost     bool // a partly read hello was given up for another connection
	name     [MaxNameLen]byte
	nameLen  int
	tmp      [MaxNameLen]byte
	mask     [aesBlock]byte
	nonce    [quicIVLen]byte
	hdr      [quicMaxPacket]byte // one packet, header protection removed, then its plaintext
}

// NewQUICHello returns an empty QUICHello.
func NewQUICHello() *QUICHello {
	q := &QUICHello{kdf: newQUICKDF()}
	q.Reset()
	return q
}

// Reset empties q for reuse by another flow, keeping its hash state.
func (q *QUICHello) Reset() {
	q.stream.reset()
	q.keys = quicKeys{}
	q.largest, q.initials, q.derived, q.status, q.nameLen, q.done = -1, 0, 0, Unset, 0, false
	q.npns, q.retries, q.lost = 0, 0, false
}

// Done reports that the client has moved on from its Initials: after a
// complete ClientHello it sent a Handshake or a 1-RTT packet (RFC 9001
// 4.9.1: it has discarded its Initial keys). The answer stays; the
// reassembly state is no longer needed for this connection.
func (q *QUICHello) Done() bool { return q.done }

// ForgetInitials zeroes the count of Initials opened, which
// QUICMaxInitials bounds, and keeps the rest of the connection's state:
// benchmarks call it to measure opening the same Initial again and again.
func (q *QUICHello) ForgetInitials() { q.initials = 0 }

// Partial reports that part of a ClientHello has been read, not all of
// it: the parts may have reached the server, so this state must not be
// forgotten while the rest can still come.
func (q *QUICHello) Partial() bool { return q.status == NeedMore && q.stream.any }

// moveOn notes a Handshake or short-header packet from the client.
func (q *QUICHello) moveOn() {
	if q.status == Found || q.status == Absent {
		q.done = true
	}
}

// Status returns the answer of the last Feed.
func (q *QUICHello) Status() Status { return q.status }

// ServerName returns the lowercased server name once Feed returned Found.
// The slice points into q.
func (q *QUICHello) ServerName() []byte { return q.name[:q.nameLen] }

// Feed reads one UDP datagram from the client and returns the flow's
// answer: NotProtocol while no QUIC v1 or v2 Initial has opened and
// this datagram does not look like one; NeedMore while the ClientHello
// is incomplete (or only Initials that fail authentication came); then
// Found, Absent, Malformed (a packet that opened but breaks RFC 9000
// rules, CRYPTO data that contradicts itself, a long header of a version
// other than 1 and 2) or TooLarge. Later datagrams keep being checked:
// a retransmission that contradicts the collected ClientHello turns the
// answer to Malformed.
func (q *QUICHello) Feed(d []byte) ([]byte, Status) {
	if st := q.feed(d); st != Unset {
		q.status = st
	} else if q.status == Unset {
		if QUICInitial(d) {
			return nil, NeedMore // did not open; one that opens may follow
		}
		return nil, NotProtocol
	}
	if q.status == Found {
		return q.name[:q.nameLen], Found
	}
	return nil, q.status
}

// QUICInitial reports whether d starts with the long header of a QUIC v1
// or v2 Initial packet: a datagram that can start or change a connection's
// ClientHello, which must be fed to the flow's QUICHello even after the
// flow's name is known.
func QUICInitial(d []byte) bool {
	return len(d) >= quicMinLong && d[0]&quicLongHeader != 0 &&
		quicIsInitial(d[0], binary.BigEndian.Uint32(d[1:5]))
}

func quicIsInitial(b0 byte, version uint32) bool {
	typ := b0 >> 4 & 3
	return version == quicVersion1 && typ == 0 || version == quicVersion2 && typ == 1
}

// QUICUnopened is Feed's answer for a datagram that is not a QUIC v1 or
// v2 Initial, on a flow where none has opened.
func QUICUnopened(d []byte) Status {
	if quicOtherVersion(d) {
		return Malformed
	}
	return NotProtocol
}

// quicOtherVersion reports whether d looks like a client's first datagram
// of a QUIC version other than 1 and 2: a long header, a version that is
// not Version Negotiation (0), padded to 1200 bytes as every QUIC version
// pads its Initials. Its ClientHello cannot be read, so the policy decides.
func quicOtherVersion(d []byte) bool {
	if len(d) < quicMinDatagram || d[0]&quicLongHeader == 0 {
		return false
	}
	v := binary.BigEndian.Uint32(d[1:5])
	return v != 0 && v != quicVersion1 && v != quicVersion2
}

// feed walks the packets of a datagram and returns the new answer, or
// Unset when nothing changed it.
func (q *QUICHello) feed(d []byte) Status {
	if quicOtherVersion(d) {
		return Malformed
	}
	// Coalesced packets with another DCID than the first are read too:
	// RFC 9000 12.2 says receivers SHOULD ignore them, and a server that
	// does not must not see a hello qguard skipped.
	res := Unset
	if len(d) > 0 && d[0]&quicLongHeader == 0 {
		q.moveOn()
	}
	for len(d) >= quicMinLong && d[0]&quicLongHeader != 0 {
		h, ok := parseQUICLong(d)
		if !ok {
			break // truncated or unreadable: the rest of the datagram is lost to a server too
		}
		if h.handshake {
			q.moveOn()
		}
		if h.initial {
			if st := q.initial(d[:h.end], h); st != Unset {
				res, q.status = st, st // the next coalesced packet sees it
				if st == Malformed || st == TooLarge {
					return st
				}
			}
		}
		d = d[h.end:]
	}
	return res
}

// quicLong is a parsed long header; offsets index the packet.
type quicLong struct {
	version   uint32
	initial   bool
	handshake bool
	dcid      []byte
	pnOff     int // start of the protected packet number
	end       int // end of the packet in the datagram
}

// parseQUICLong reads the long header of a v1 or v2 packet that carries a
// length field (Initial, 0-RTT, Handshake). Retry packets, other versions
// and packets running past the datagram report false.
func parseQUICLong(d []byte) (quicLong, bool) {
	var h quicLong
	h.version = binary.BigEndian.Uint32(d[1:5])
	if h.version != quicVersion1 && h.version != quicVersion2 {
		return h, false
	}
	typ := d[0] >> 4 & 3
	if h.version == quicVersion1 && typ == 3 || h.version == quicVersion2 && typ == 0 {
		return h, false // Retry: sent by servers only, and without a length
	}
	h.initial = quicIsInitial(d[0], h.version)
	h.handshake = h.version == quicVersion1 && typ == 2 || h.version == quicVersion2 && typ == 3
	r := tlsReader{b: d, off: 5}
	h.dcid = r.vec8()
	scid := r.vec8()
	if len(h.dcid) > quicMaxCID || len(scid) > quicMaxCID {
		return h, false
	}
	if h.initial {
		r.take(int(min(quicVarint(&r), uint64(len(d))+1))) // token
	}
	n := quicVarint(&r)
	if r.bad || n > uint64(len(d)-r.off) {
		return h, false
	}
	h.pnOff, h.end = r.off, r.off+int(n)
	return h, true
}

// quicVarint reads a variable-length integer (RFC 9000 16).
func quicVarint(r *tlsReader) uint64 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	n := 1 << (b[0] >> 6)
	v := uint64(b[0] & 0x3f)
	for _, c := range r.take(n - 1) {
		v = v<<8 | uint64(c)
	}
	return v
}

// initial opens one Initial packet p and feeds its frames to the
// reassembly. It returns Unset for a packet that does not open.
func (q *QUICHello) initial(p []byte, h quicLong) Status {
	if len(p) > quicMaxPacket {
		return TooLarge
	}
	if h.end-h.pnOff < quicPNShift+quicSample {
		return Unset // too short for a header protection sample: not a valid packet
	}
	if q.initials >= QUICMaxInitials || q.lost {
		return TooLarge
	}
	plain, pn, res := q.open(p, h, &q.keys, q.largest, true)
	switch {
	case res == openBudget:
		return TooLarge
	case res == openFailed:
		var st Status
		if plain, pn, st = q.reopen(p, h); st != NeedMore {
			return st
		}
	case q.status == Malformed || q.status == TooLarge:
		return q.status // the connection's answer is settled
	}
	q.initials++
	q.largest = max(q.largest, int64(pn))
	if q.npns < len(q.pns) {
		q.pns[q.npns] = pn
		q.npns++
	}
	if plain == nil {
		return Malformed // reserved bits set: PROTOCOL_VIOLATION (RFC 9000 17.2)
	}
	return q.frames(plain)
}

// reopen opens an Initial that the connection's keys do not open: the
// same connection in the other version, or a new connection (or the same
// after a Retry) with keys from its own DCID. NeedMore means it opened;
// Unset that it does not open at all.
func (q *QUICHello) reopen(p []byte, h quicLong) ([]byte, uint64, Status) {
	if q.keys.derivedFrom(h.version, h.dcid) {
		return nil, 0, Unset // forged or corrupt: a server drops it too
	}
	var fresh quicKeys
	if orig := q.keys.dcid[:q.keys.dcidLen]; q.keys.valid() && q.keys.version != h.version {
		// Compatible version negotiation (RFC 9368): the connection goes
		// on in the other version, with keys from the client's original
		// DCID and that version's salt.
		if !q.derive(&fresh, h.version, orig) {
			return nil, 0, TooLarge
		}
		switch plain, pn, res := q.open(p, h, &fresh, q.largest, true); {
		case res == openOK:
			q.keys = fresh
			return plain, pn, NeedMore
		case res == openBudget:
			return nil, 0, TooLarge
		case string(orig) == string(h.dcid):
			return nil, 0, Unset
		}
	}
	if !q.derive(&fresh, h.version, h.dcid) {
		return nil, 0, TooLarge
	}
	plain, pn, res := q.open(p, h, &fresh, -1, false)
	if res != openOK {
		return nil, 0, Unset
	}
	if q.Partial() {
		// Starting over would forget pieces of a hello that may have
		// reached the server: the rest, sent later, would complete it
		// unjudged.
		q.lost = true
		return nil, 0, TooLarge
	}
	q.keys = fresh
	q.stream.reset()
	q.largest, q.status, q.nameLen, q.done, q.npns = -1, NeedMore, 0, false, 0
	return plain, pn, NeedMore
}

// derive sets k to the keys of version and dcid, unless the flow has used
// up its quicMaxKeys derivations.
func (q *QUICHello) derive(k *quicKeys, version uint32, dcid []byte) bool {
	if q.derived >= quicMaxKeys {
		return false
	}
	q.derived++
	return k.derive(&q.kdf, version, dcid) == nil
}

// openResult is the outcome of open.
type openResult uint8

const (
	openFailed openResult = iota // the packet does not open with these keys
	openOK
	openBudget // the flow has used up its quicMaxRetries
)

// open removes header protection from a copy of p and decrypts its
// payload with k, returning the plaintext frames (in q.hdr) and the packet
// number. A packet that opens with reserved header bits set returns nil
// frames and openOK.
//
// The server expands a truncated packet number next to the largest it
// has opened, which may be smaller than qguard's: packets qguard saw may
// have been lost after it or dropped by the server. With alts, a packet
// that does not open next to largest is tried next to each packet number
// opened on the connection, and to none, so every packet a server can
// open, qguard opens too.
func (q *QUICHello) open(p []byte, h quicLong, k *quicKeys, largest int64, alts bool) ([]byte, uint64, openResult) {
	if !k.valid() {
		return nil, 0, openFailed
	}
	mask := q.mask[:] // fields, not locals: a slice passed to an interface method escapes
	k.hp.Encrypt(mask, p[h.pnOff+quicPNShift:h.pnOff+quicPNShift+quicSample])
	b0 := p[0] ^ mask[0]&0x0f
	pnLen := int(b0&3) + 1
	hdr := q.hdr[:h.pnOff+pnLen]
	copy(hdr, p)
	hdr[0] = b0
	var trunc uint64
	for i := 0; i < pnLen; i++ {
		hdr[h.pnOff+i] ^= mask[1+i]
		trunc = trunc<<8 | uint64(hdr[h.pnOff+i])
	}
	ct := p[len(hdr):]
	if len(ct) < quicTagLen {
		return nil, 0, openFailed
	}
	pn := quicPacketNumber(largest, trunc, pnLen)
	if plain, ok := q.decrypt(k, hdr, ct, pn, b0); ok || !alts {
		return plain, pn, openResult(b2i(ok))
	}
	for i := -1; i < q.npns; i++ {
		c := quicPacketNumber(q.base(i), trunc, pnLen)
		if c == pn || q.triedBefore(i, c, trunc, pnLen) {
			continue
		}
		if q.retries >= quicMaxRetries {
			return nil, 0, openBudget
		}
		q.retries++
		if plain, ok := q.decrypt(k, hdr, ct, c, b0); ok {
			return plain, c, openOK
		}
	}
	return nil, 0, openFailed
}

// base is the largest packet number a server may have opened: none (-1)
// or the i-th opened on the connection.
func (q *QUICHello) base(i int) int64 {
	if i < 0 {
		return -1
	}
	return int64(q.pns[i])
}

// triedBefore reports whether candidate c came from a base before i.
func (q *QUICHello) triedBefore(i int, c, trunc uint64, pnLen int) bool {
	for j := -1; j < i; j++ {
		if quicPacketNumber(q.base(j), trunc, pnLen) == c {
			return true
		}
	}
	return false
}

func (q *QUICHello) decrypt(k *quicKeys, hdr, ct []byte, pn uint64, b0 byte) ([]byte, bool) {
	k.nonce(&q.nonce, pn)
	plain, err := k.aead.Open(hdr[len(hdr):], q.nonce[:], ct, hdr)
	if err != nil {
		return nil, false
	}
	if b0&0x0c != 0 {
		return nil, true
	}
	return plain, true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

const aesBlock = 16

// quicPacketNumber expands a truncated packet number next to the largest
// one seen (RFC 9000 A.3).
func quicPacketNumber(largest int64, trunc uint64, pnLen int) uint64 {
	expected := uint64(largest + 1)
	win := uint64(1) << (8 * pnLen)
	hwin := win / 2
	c := expected&^(win-1) | trunc
	switch {
	case c+hwin <= expected && c < 1<<62-win:
		return c + win
	case c > expected+hwin && c >= win:
		return c - win
	}
	return c
}

// frames walks the frames of an opened Initial packet (RFC 9000 12.4:
// PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE are allowed) and returns
// the answer after its CRYPTO data.
func (q *QUICHello) frames(b []byte) Status {
	if len(b) == 0 {
		return Malformed // no frames, or reserved bits set
	}
	r := tlsReader{b: b}
	for r.off < len(b) && !r.bad {
		switch typ := quicVarint(&r); typ {
		case quicFramePadding:
			for r.off < len(b) && b[r.off] == 0 {
				r.off++ // padding runs to the packet's end; skip it at once
			}
		case quicFramePing:
		case quicFrameAck, quicFrameAckECN:
			quicSkipAck(&r, typ == quicFrameAckECN)
		case quicFrameClose:
			quicVarint(&r) // error code
			quicVarint(&r) // frame type
			r.take(int(min(quicVarint(&r), uint64(len(b))+1)))
		case quicFrameCrypto:
			if st := q.crypto(&r); st != Unset {
				return st
			}
		default:
			return Malformed // not allowed in Initial packets: PROTOCOL_VIOLATION
		}
	}
	if r.bad {
		return Malformed // FRAME_ENCODING_ERROR
	}
	return q.helloStatus()
}

func quicSkipAck(r *tlsReader, ecn bool) {
	quicVarint(r) // largest acknowledged
	quicVarint(r) // delay
	n := quicVarint(r)
	quicVarint(r) // first range
	if n > uint64(len(r.b)) {
		r.bad = true
		return
	}
	for i := uint64(0); i < 2*n && !r.bad; i++ {
		quicVarint(r) // gap, range length
	}
	if ecn {
		quicVarint(r)
		quicVarint(r)
		quicVarint(r)
	}
}

// crypto places one CRYPTO frame; Unset means go on.
func (q *QUICHello) crypto(r *tlsReader) Status {
	off := quicVarint(r)
	n := quicVarint(r)
	data := r.take(int(min(n, uint64(len(r.b))+1)))
	if r.bad {
		return Malformed
	}
	if off+n > quicMaxVarint {
		return Malformed // FRAME_ENCODING_ERROR
	}
	if off+n > QUICCryptoBufferSize {
		return TooLarge
	}
	if !q.stream.write(int(off), data) {
		return Malformed // contradicts bytes already collected
	}
	return Unset
}

func (q *QUICHello) helloStatus() Status {
	name, st := q.stream.hello(q.name[:0], q.tmp[:0])
	q.nameLen = len(name)
	return st
}
