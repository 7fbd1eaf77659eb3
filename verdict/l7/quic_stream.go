package l7

import (
	"bytes"
	"math/bits"
)

// QUICCryptoBufferSize bounds the CRYPTO stream bytes collected per QUIC
// connection: the ClientHello (and a second one after a HelloRetryRequest)
// must fit. Data beyond it makes the flow TooLarge, decided by policy.
const QUICCryptoBufferSize = 16 << 10

// cryptoStream reassembles the client's Initial CRYPTO stream by offset.
// Frames may come in any order and overlap; a byte is written once, and a
// later copy that differs from it marks the stream as conflicting, since a
// receiver would keep one copy or the other and this one cannot know which.
type cryptoStream struct {
	buf    [QUICCryptoBufferSize]byte
	have   [QUICCryptoBufferSize / 64]uint64 // bit i%64 of word i/64: byte i held
	prefix int                               // bytes held contiguously from offset 0
	any    bool                              // some byte is held
}

func (s *cryptoStream) reset() {
	s.have = [len(s.have)]uint64{}
	s.prefix, s.any = 0, false
}

// write places data at off. It reports false when data differs from bytes
// already held; the caller has checked that off+len(data) fits the buffer.
func (s *cryptoStream) write(off int, data []byte) bool {
	s.any = s.any || len(data) > 0
	for len(data) > 0 {
		w, bit := off/64, off%64
		n := min(64-bit, len(data))
		mask := ^uint64(0) >> (64 - n) << bit
		held := s.have[w] & mask
		switch {
		case held == 0:
			copy(s.buf[off:], data[:n])
		case held == mask:
			if !bytes.Equal(s.buf[off:off+n], data[:n]) {
				return false
			}
		default:
			for i := 0; i < n; i++ {
				if held&(1<<(bit+i)) == 0 {
					s.buf[off+i] = data[i]
				} else if s.buf[off+i] != data[i] {
					return false
				}
			}
		}
		s.have[w] |= mask
		off += n
		data = data[n:]
	}
	s.advance()
	return true
}

// advance extends prefix over the bytes now held.
func (s *cryptoStream) advance() {
	for s.prefix < len(s.buf) {
		w, bit := s.prefix/64, s.prefix%64
		run := bits.TrailingZeros64(^(s.have[w] >> bit))
		if run > 64-bit {
			run = 64 - bit
		}
		s.prefix += run
		if run < 64-bit {
			return
		}
	}
}

// hello reads the handshake messages held contiguously from offset 0: a
// ClientHello, and a second one after a HelloRetryRequest. It returns
// NeedMore until the first is complete; then its name, which a second
// ClientHello must repeat (RFC 8446 4.1.2) or the stream is Malformed.
// dst and tmp are name buffers of capacity MaxNameLen.
func (s *cryptoStream) hello(dst, tmp []byte) ([]byte, Status) {
	var name []byte
	st := NeedMore
	for off := 0; ; {
		if s.prefix-off < 1 {
			return name, st
		}
		if s.buf[off] != tlsClientHello {
			return nil, Malformed // a client's Initial CRYPTO stream carries only ClientHellos
		}
		if s.prefix-off < tlsHandshakeHeaderLen {
			return name, st
		}
		hlen := int(s.buf[off+1])<<16 | int(s.buf[off+2])<<8 | int(s.buf[off+3])
		end := off + tlsHandshakeHeaderLen + hlen
		if end > len(s.buf) {
			if st == NeedMore {
				return nil, TooLarge
			}
			return nil, Malformed
		}
		if s.prefix < end {
			return name, st
		}
		if st == NeedMore {
			name, st = clientHelloServerName(s.buf[off+tlsHandshakeHeaderLen:end], dst[:0])
			if st != Found && st != Absent {
				return nil, st
			}
		} else if n, nst := clientHelloServerName(s.buf[off+tlsHandshakeHeaderLen:end], tmp[:0]); nst != st || !bytes.Equal(n, name) {
			return nil, Malformed // the retried ClientHello names another server
		}
		off = end
	}
}
