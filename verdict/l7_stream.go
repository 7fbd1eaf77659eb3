package verdict

import (
	"bytes"
	"encoding/binary"

	"github.com/qguard/qguard/verdict/l7"
)

// A TCP connection carries many DNS messages or HTTP requests, and a rule
// that judged only the first would let the second walk past it. l7Stream
// follows the initiator's side of one such connection, message by message:
//
//	DNS  (RFC 1035 4.2.2, RFC 7766 6.2.1): length(2) message | length(2) message | ...
//	HTTP (RFC 9112 6.3): request head, then a body framed by Content-Length
//	     or chunked coding, then the next request (keep-alive, pipelining)
//
// Only the part of a message a rule reads is kept: a DNS message (whose
// question may point forward into it) and an HTTP request head. Bytes in
// between (the rest of a long DNS message, request bodies) are counted off
// without being stored. A head that spans segments is collected in a
// HelloBuffer borrowed from the flow table's pool and given back once the
// head is complete, so a kept-alive connection holds only this small state.
type l7Stream struct {
	next    uint32      // sequence number of the next in-order byte
	skip    uint64      // bytes still to pass: the rest of a DNS message, an HTTP body or chunk
	want    uint32      // DNS: length of the message being collected
	n       uint32      // bytes of the head held in buf
	buf     uint16      // 1 + index of the borrowed HelloBuffer; 0 for none
	line    uint16      // HTTP chunked framing: bytes of the current line
	kind    uint8       // needDNS or needHost
	phase   streamPhase //
	pfx     [2]byte     // DNS: length prefix cut by a segment boundary
	pfxN    uint8
	cr      bool // HTTP chunked framing: a CR was just read
	digit   bool // HTTP chunk size: a hex digit was read
	started bool // a message has begun (HTTP: data that is not the protocol is then lost framing)
	// upgraded: the head being read follows CONNECT or Upgrade; if it
	// turns out not to be a request, the connection is a tunnel.
	upgraded bool
}

type streamPhase uint8

const (
	phaseStart     streamPhase = iota // DNS: length prefix; HTTP: request head
	phaseMsg                          // DNS: the message
	phaseSkip                         // DNS: rest of a long message; HTTP: Content-Length body
	phaseChunkSize                    // HTTP chunked body: chunk-size digits
	phaseChunkExt                     // rest of the chunk-size line (extensions)
	phaseChunkData                    // chunk data
	phaseChunkEnd                     // CRLF after chunk data
	phaseTrailer                      // trailer section, up to its empty line
	phaseUpgrade                      // after CONNECT or Upgrade: is the next data a request?
	phaseTunnel                       // the connection carries another protocol now
	phaseLost                         // framing lost: nothing after can be judged
)

// Bounds of the HTTP framing lines that are read, not stored.
const (
	maxChunkLine   = 4096 // chunk-size line with extensions
	maxTrailerLine = 16 << 10
)

// segKind classifies a segment against what the stream has seen.
type segKind uint8

const (
	segNew segKind = iota // in-order bytes, possibly after a retransmitted part
	segOld                // nothing new: a retransmission
	segGap                // starts after bytes not seen yet
)

// take trims a segment to its bytes after s.next and advances s.next.
// Bytes already seen are skipped (the first copy wins, as in the Linux
// receiver); a segment after a gap is not consumed: the caller drops it so
// that the sender retransmits it in order.
func (s *l7Stream) take(seq uint32, seg []byte) ([]byte, segKind) {
	d := int64(int32(seq - s.next))
	if d > 0 {
		return nil, segGap
	}
	if -d >= int64(len(seg)) {
		return nil, segOld
	}
	seg = seg[-d:]
	s.next += uint32(len(seg))
	return seg, segNew
}

// release gives the borrowed buffer back unless a head is being collected
// in it.
func (s *l7Stream) release(t *FlowTable, force bool) {
	if s.buf != 0 && (force || s.n == 0) {
		t.hellos.put(s.buf)
		s.buf = 0
	}
}

// nextDNS consumes data up to the end of the next DNS message and returns
// the message, at most HelloBufferSize bytes of it (cut reports that the
// message is longer). Status l7.Unset: data ran out without a message
// beginning; l7.NeedMore: a message began and continues in a later segment;
// l7.TooLarge: no buffer was free to collect it.
func (s *l7Stream) nextDNS(t *FlowTable, data *[]byte) (msg []byte, cut bool, st l7.Status) {
	d := *data
	defer func() { *data = d }()
	if s.buf != 0 && s.phase != phaseMsg {
		s.n = 0
		s.release(t, true) // the message handed out last time is judged
	}
	for {
		switch s.phase {
		case phaseSkip:
			c := min(s.skip, uint64(len(d)))
			d, s.skip = d[c:], s.skip-c
			if s.skip > 0 {
				return nil, false, l7.Unset
			}
			s.phase = phaseStart
		case phaseStart:
			for s.pfxN < 2 && len(d) > 0 {
				s.pfx[s.pfxN] = d[0]
				s.pfxN++
				d = d[1:]
			}
			if s.pfxN == 0 {
				return nil, false, l7.Unset
			}
			if s.pfxN < 2 {
				return nil, false, l7.NeedMore
			}
			s.want, s.pfxN, s.n, s.phase = uint32(binary.BigEndian.Uint16(s.pfx[:])), 0, 0, phaseMsg
		case phaseMsg:
			head := min(s.want, l7.HelloBufferSize)
			if s.buf == 0 && s.n == 0 && uint32(len(d)) >= head {
				msg, d = d[:head], d[head:]
				s.skip, s.phase = uint64(s.want-head), phaseSkip
				return msg, s.want > head, l7.Found
			}
			if s.buf == 0 {
				if s.buf = t.hellos.get(); s.buf == 0 {
					s.skip, s.phase = uint64(s.want), phaseSkip
					return nil, false, l7.TooLarge
				}
			}
			b := t.hellos.at(s.buf).Scratch()[:head]
			c := copy(b[s.n:], d)
			s.n += uint32(c)
			d = d[c:]
			if s.n < head {
				return nil, false, l7.NeedMore
			}
			s.skip, s.phase = uint64(s.want-head), phaseSkip
			return b, s.want > head, l7.Found
		default:
			return nil, false, l7.Malformed
		}
	}
}

// nextHTTP consumes data up to the end of the next request head and
// returns it. Bodies are skipped by the framing afterHead found. Status
// l7.Unset: data ran out inside a body or tunnel, or held only the empty
// lines a server ignores before a request (RFC 9112 2.2); l7.NeedMore: a
// head began and continues later (head then holds its start);
// l7.TooLarge: the head exceeds HelloBufferSize or no buffer was free;
// l7.Malformed: the framing was lost earlier.
func (s *l7Stream) nextHTTP(t *FlowTable, data *[]byte) (head []byte, st l7.Status) {
	d := *data
	defer func() { *data = d }()
	if s.buf != 0 && s.n == 0 {
		s.release(t, true)
	}
	for {
		switch s.phase {
		case phaseStart:
			if s.n == 0 {
				for len(d) > 0 && (d[0] == '\r' || d[0] == '\n') {
					d = d[1:]
				}
				if len(d) == 0 {
					return nil, l7.Unset
				}
				if end := headEnd(d, 0); end > 0 {
					head, d = d[:end], d[end:]
					return head, l7.Found
				}
				if s.buf = t.hellos.get(); s.buf == 0 {
					s.phase = phaseLost
					return d, l7.TooLarge
				}
			}
			if len(d) == 0 {
				return nil, l7.Unset
			}
			b := t.hellos.at(s.buf).Scratch()[:]
			c := copy(b[s.n:], d)
			if end := headEnd(b[:int(s.n)+c], int(s.n)); end > 0 {
				d = d[end-int(s.n):]
				s.n = 0 // the buffer goes back on the next call
				return b[:end], l7.Found
			}
			s.n += uint32(c)
			d = d[c:]
			if len(d) > 0 || s.n == l7.HelloBufferSize {
				s.phase, s.n = phaseLost, 0
				s.release(t, true)
				return nil, l7.TooLarge
			}
			return b[:s.n], l7.NeedMore
		case phaseSkip, phaseChunkData:
			c := min(s.skip, uint64(len(d)))
			d, s.skip = d[c:], s.skip-c
			if s.skip > 0 {
				return nil, l7.Unset
			}
			if s.phase == phaseSkip {
				s.phase = phaseStart
			} else {
				s.phase = phaseChunkEnd
			}
		case phaseChunkSize, phaseChunkExt, phaseChunkEnd, phaseTrailer:
			if len(d) == 0 {
				return nil, l7.Unset
			}
			d = s.chunked(d)
		case phaseUpgrade:
			if len(d) == 0 {
				return nil, l7.Unset
			}
			// A server that switched protocols no longer reads requests;
			// one that refused reads the next request. Data that starts
			// like a request is judged as one either way.
			if _, _, rst := l7.HTTPRequestLine(d); rst == l7.NotProtocol {
				s.phase = phaseTunnel
			} else {
				s.phase, s.upgraded = phaseStart, true // a request, or not known yet
			}
		case phaseTunnel:
			d = d[len(d):]
			return nil, l7.Unset
		default:
			d = d[len(d):]
			return nil, l7.Malformed
		}
	}
}

// headEnd returns the length of the request head at the start of b (up to
// and including its empty line, CRLF or bare LF, RFC 9112 2.2), or 0 when
// it has not ended; from is where new bytes start.
func headEnd(b []byte, from int) int {
	for i := max(0, from-3); i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return 0
}

// chunked runs the chunked-coding framing (RFC 9112 7.1) over d until the
// next chunk's data, the end of the message or the end of d:
//
//	chunk-size [ ";" ext ] CRLF  data  CRLF  ...  "0" CRLF  trailer-fields  CRLF
func (s *l7Stream) chunked(d []byte) []byte {
	for len(d) > 0 {
		c := d[0]
		switch s.phase {
		case phaseChunkSize:
			if v, ok := unhexDigit(c); ok && !s.cr {
				if s.skip > 1<<58 {
					s.phase = phaseLost
					return d
				}
				s.skip, s.digit = s.skip<<4|uint64(v), true
				d = d[1:]
				continue
			}
			if !s.digit {
				s.phase = phaseLost
				return d
			}
			s.phase, s.line = phaseChunkExt, 0
		case phaseChunkExt:
			d = d[1:]
			switch {
			case c == '\n':
				s.cr = false
				if s.skip == 0 {
					s.phase, s.line = phaseTrailer, 0
				} else {
					s.phase = phaseChunkData
					return d
				}
			case s.cr || s.line >= maxChunkLine:
				s.phase = phaseLost // CR not followed by LF, or an endless line
				return d
			case c == '\r':
				s.cr = true
			default:
				s.line++
			}
		case phaseChunkEnd:
			d = d[1:]
			switch {
			case c == '\n':
				s.cr, s.digit, s.phase = false, false, phaseChunkSize
			case c == '\r' && !s.cr:
				s.cr = true
			default:
				s.phase = phaseLost
				return d
			}
		case phaseTrailer:
			d = d[1:]
			switch {
			case c == '\n':
				end := s.line == 0
				s.cr, s.line = false, 0
				if end {
					s.phase = phaseStart
					return d
				}
			case s.cr || s.line >= maxTrailerLine:
				s.phase = phaseLost
				return d
			case c == '\r':
				s.cr = true
			default:
				s.line++
			}
		default:
			return d
		}
	}
	return d
}

func unhexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// afterHead sets the framing of the body that follows a complete request
// head (RFC 9112 6.3): chunked when Transfer-Encoding ends with chunked,
// else Content-Length bytes, else none. A message whose length a server
// cannot determine reliably (Transfer-Encoding without chunked last,
// Transfer-Encoding with Content-Length, differing or bad Content-Length)
// is an error a server answers by closing the connection (RFC 9112 6.1,
// 6.3): the framing is lost, and anything after is not judged as requests.
// After CONNECT or an Upgrade request the connection may carry another
// protocol.
func (s *l7Stream) afterHead(head []byte) {
	s.started, s.upgraded = true, false
	f := httpFraming(head)
	switch {
	case !f.ok:
		s.phase = phaseLost
	case f.chunked:
		s.phase, s.skip, s.digit, s.cr = phaseChunkSize, 0, false, false
	case f.length > 0:
		s.phase, s.skip = phaseSkip, f.length
	case f.tunnel:
		s.phase = phaseUpgrade
	default:
		s.phase = phaseStart
	}
	if f.tunnel && s.phase != phaseLost && s.phase != phaseStart && s.phase != phaseUpgrade {
		s.phase = phaseLost // a body on CONNECT or Upgrade: nothing to gain following it
	}
}

type framing struct {
	length  uint64
	chunked bool
	tunnel  bool
	ok      bool
}

// httpFraming reads the framing fields of a complete request head.
func httpFraming(head []byte) framing {
	f := framing{ok: true}
	eol := bytes.IndexByte(head, '\n')
	if eol < 0 {
		return framing{}
	}
	if sp := bytes.IndexByte(head, ' '); sp > 0 && string(head[:sp]) == "CONNECT" {
		f.tunnel = true
	}
	hasCL, hasTE := false, false
	for b := head[eol+1:]; len(b) > 0; {
		e := bytes.IndexByte(b, '\n')
		if e < 0 {
			break
		}
		line := bytes.TrimSuffix(b[:e], []byte{'\r'})
		b = b[e+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name, val := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseLength(val)
			if !ok || hasCL && n != f.length {
				f.ok = false
			}
			hasCL, f.length = true, n
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			hasTE = true
			last := val
			if i := bytes.LastIndexByte(val, ','); i >= 0 {
				last = bytes.Trim(val[i+1:], " \t")
			}
			f.chunked = bytes.EqualFold(last, []byte("chunked"))
		case bytes.EqualFold(name, []byte("upgrade")):
			f.tunnel = f.tunnel || len(val) > 0
		}
	}
	if hasTE && (!f.chunked || hasCL) {
		f.ok = false
	}
	if hasTE {
		f.length = 0
	}
	return f
}

// parseLength parses a Content-Length value: digits only (RFC 9110 8.6).
func parseLength(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// streamPool holds the streams of the flows whose DNS or HTTP messages are
// followed. They are small and allocated once up to the bound; a flow that
// finds the pool exhausted cannot be followed and is decided by
// Policy.L7Undecided.
type streamPool struct {
	slots
	s []l7Stream
}

func (p *streamPool) init(n int) {
	p.slots.init(n)
	p.s = make([]l7Stream, 0, n)
}

func (p *streamPool) get() uint16 {
	i, fresh := p.take()
	if fresh {
		p.s = p.s[:i]
	}
	return i
}

func (p *streamPool) put(t *FlowTable, i uint16) {
	s := &p.s[i-1]
	s.release(t, true)
	*s = l7Stream{}
	p.give(i)
}

func (p *streamPool) at(i uint16) *l7Stream { return &p.s[i-1] }
