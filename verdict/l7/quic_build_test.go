package l7

import (
	"testing"
)

// quicVarintBytes encodes v as a QUIC variable-length integer of the
// shortest form.
func quicVarintBytes(v uint64) []byte {
	switch {
	case v < 1<<6:
		return []byte{byte(v)}
	case v < 1<<14:
		return []byte{0x40 | byte(v>>8), byte(v)}
	case v < 1<<30:
		return []byte{0x80 | byte(v>>24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	b := []byte{0xc0 | byte(v>>56)}
	for i := 48; i >= 0; i -= 8 {
		b = append(b, byte(v>>i))
	}
	return b
}

// cryptoFrame builds a CRYPTO frame.
func cryptoFrame(off int, data []byte) []byte {
	b := append([]byte{quicFrameCrypto}, quicVarintBytes(uint64(off))...)
	b = append(b, quicVarintBytes(uint64(len(data)))...)
	return append(b, data...)
}

// qpkt describes a client Initial packet for sealQUIC.
type qpkt struct {
	version    uint32
	dcid, scid []byte
	keyDCID    []byte // DCID the keys come from; nil: dcid
	token      []byte
	pn         uint64
	pnLen      int // 1..4; 0 means 2
	frames     []byte
	size       int  // pad the frames with PADDING to a packet of this many bytes
	reserved   byte // reserved header bits to set (0x0c at most)
}

// sealQUIC builds the protected Initial packet p describes, the way a
// client does: AEAD with the Initial keys, then header protection.
func sealQUIC(t testing.TB, p qpkt) []byte {
	t.Helper()
	if p.version == 0 {
		p.version = quicVersion1
	}
	if p.pnLen == 0 {
		p.pnLen = 2
	}
	if p.keyDCID == nil {
		p.keyDCID = p.dcid
	}
	typ := byte(0)
	if p.version == quicVersion2 {
		typ = 1
	}
	hdr := []byte{0xc0 | typ<<4 | p.reserved | byte(p.pnLen-1)}
	hdr = append(hdr, byte(p.version>>24), byte(p.version>>16), byte(p.version>>8), byte(p.version))
	hdr = append(hdr, byte(len(p.dcid)))
	hdr = append(hdr, p.dcid...)
	hdr = append(hdr, byte(len(p.scid)))
	hdr = append(hdr, p.scid...)
	hdr = append(hdr, quicVarintBytes(uint64(len(p.token)))...)
	hdr = append(hdr, p.token...)
	frames := p.frames
	if extra := p.size - (len(hdr) + 2 + p.pnLen + len(frames) + quicTagLen); extra > 0 {
		frames = append(frames[:len(frames):len(frames)], make([]byte, extra)...)
	}
	if short := quicPNShift - p.pnLen - len(frames); short > 0 {
		frames = append(frames[:len(frames):len(frames)], make([]byte, short)...) // room for the sample
	}
	length := p.pnLen + len(frames) + quicTagLen
	hdr = append(hdr, 0x40|byte(length>>8), byte(length)) // two-byte varint, as clients write it
	pnOff := len(hdr)
	for i := p.pnLen - 1; i >= 0; i-- {
		hdr = append(hdr, byte(p.pn>>(8*i)))
	}
	var k quicKeys
	kdf := newQUICKDF()
	if err := k.derive(&kdf, p.version, p.keyDCID); err != nil {
		t.Fatal(err)
	}
	var nonce [quicIVLen]byte
	k.nonce(&nonce, p.pn)
	pkt := k.aead.Seal(append([]byte(nil), hdr...), nonce[:], frames, hdr)
	var mask [aesBlock]byte
	k.hp.Encrypt(mask[:], pkt[pnOff+quicPNShift:pnOff+quicPNShift+quicSample])
	pkt[0] ^= mask[0] & 0x0f
	for i := 0; i < p.pnLen; i++ {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}
