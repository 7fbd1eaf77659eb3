package l7

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// QUIC Initial packets are protected with keys anyone can compute from the
// client's first Destination Connection ID (RFC 9001 5.2, RFC 9369 3.3):
//
//	initial_secret = HKDF-Extract(salt of the version, DCID)
//	client_secret  = HKDF-Expand-Label(initial_secret, "client in", "", 32)
//	key = HKDF-Expand-Label(client_secret, "quic key", "", 16)   v2: "quicv2 key"
//	iv  = HKDF-Expand-Label(client_secret, "quic iv", "", 12)    v2: "quicv2 iv"
//	hp  = HKDF-Expand-Label(client_secret, "quic hp", "", 16)    v2: "quicv2 hp"
//
// with SHA-256, AES-128-GCM for the payload and AES-128-ECB on a 16-byte
// sample of the ciphertext for the header protection mask.
const (
	quicVersion1 = 0x00000001
	quicVersion2 = 0x6b3343cf

	quicKeyLen  = 16
	quicIVLen   = 12
	quicTagLen  = 16
	quicMaxCID  = 20 // RFC 9000 17.2: connection IDs of versions 1 and 2
	quicSample  = 16
	quicPNShift = 4 // the sample starts 4 bytes after the packet number's start
)

var (
	quicSaltV1 = [20]byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
		0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a} // RFC 9001 5.2
	quicSaltV2 = [20]byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
		0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9} // RFC 9369 3.3.1
)

// quicLabels are the HKDF labels of one version (RFC 9369 3.3.2).
type quicLabels struct{ key, iv, hp string }

var (
	quicLabelsV1 = quicLabels{"quic key", "quic iv", "quic hp"}
	quicLabelsV2 = quicLabels{"quicv2 key", "quicv2 iv", "quicv2 hp"}
)

// quicKDF computes HKDF-SHA256 with one reusable hash and fixed buffers, so
// deriving keys allocates nothing. Every output here is at most one
// SHA-256 block (32 bytes), so HKDF-Expand is a single HMAC.
type quicKDF struct {
	h    hash.Hash
	pad  [sha256.BlockSize]byte
	sum  [sha256.Size]byte
	info [2 + 1 + 6 + 16 + 1 + 1]byte // HkdfLabel with the longest label, then the counter
}

func newQUICKDF() quicKDF { return quicKDF{h: sha256.New()} }

// hmac writes HMAC-SHA256(key, msg) (RFC 2104) into k.sum; key is at most
// 32 bytes, so it is never hashed first.
func (k *quicKDF) hmac(key, msg []byte) []byte {
	for i := range k.pad {
		k.pad[i] = 0x36
	}
	for i, c := range key {
		k.pad[i] ^= c
	}
	k.h.Reset()
	k.h.Write(k.pad[:])
	k.h.Write(msg)
	inner := k.h.Sum(k.sum[:0])
	for i := range k.pad {
		k.pad[i] ^= 0x36 ^ 0x5c
	}
	k.h.Reset()
	k.h.Write(k.pad[:])
	k.h.Write(inner)
	return k.h.Sum(k.sum[:0])
}

// expandLabel writes HKDF-Expand-Label(secret, label, "", n) (RFC 8446
// 7.1) into dst[:n].
func (k *quicKDF) expandLabel(dst, secret []byte, label string, n int) {
	i := k.info[:0]
	i = binary.BigEndian.AppendUint16(i, uint16(n))
	i = append(i, byte(6+len(label)))
	i = append(i, "tls13 "...)
	i = append(i, label...)
	i = append(i, 0, 1) // empty context; HKDF-Expand's counter T(1)
	copy(dst[:n], k.hmac(secret, i))
}

// quicKeys are the client Initial keys of one connection.
type quicKeys struct {
	version uint32
	dcid    [quicMaxCID]byte // the DCID the keys were derived from
	dcidLen int
	iv      [quicIVLen]byte
	aead    cipher.AEAD
	hp      cipher.Block
}

func (q *quicKeys) valid() bool { return q.aead != nil }

func (q *quicKeys) derivedFrom(version uint32, dcid []byte) bool {
	return q.valid() && q.version == version && bytes.Equal(q.dcid[:q.dcidLen], dcid)
}

// initialKeys computes the client Initial key, IV and header protection
// key of version from dcid.
func (k *quicKDF) initialKeys(version uint32, dcid []byte, key *[quicKeyLen]byte, iv *[quicIVLen]byte, hp *[quicKeyLen]byte) {
	salt, labels := quicSaltV1[:], quicLabelsV1
	if version == quicVersion2 {
		salt, labels = quicSaltV2[:], quicLabelsV2
	}
	var secret [sha256.Size]byte
	copy(secret[:], k.hmac(salt, dcid)) // HKDF-Extract: HMAC keyed with the salt
	k.expandLabel(secret[:], secret[:], "client in", sha256.Size)
	k.expandLabel(key[:], secret[:], labels.key, quicKeyLen)
	k.expandLabel(iv[:], secret[:], labels.iv, quicIVLen)
	k.expandLabel(hp[:], secret[:], labels.hp, quicKeyLen)
}

// derive sets q to the client Initial keys of version from dcid. The AES
// and GCM states are the only allocations: once per QUIC connection, never
// for a later packet of it.
func (q *quicKeys) derive(k *quicKDF, version uint32, dcid []byte) error {
	var key, hp [quicKeyLen]byte
	k.initialKeys(version, dcid, &key, &q.iv, &hp)
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return err
	}
	hb, err := aes.NewCipher(hp[:])
	if err != nil {
		return err
	}
	q.version, q.dcidLen, q.aead, q.hp = version, copy(q.dcid[:], dcid), aead, hb
	return nil
}

// nonce writes the AEAD nonce of packet number pn (RFC 9001 5.3): the IV
// with pn, as a 62-bit big-endian number, XORed into its low bytes.
func (q *quicKeys) nonce(dst *[quicIVLen]byte, pn uint64) {
	*dst = q.iv
	for i := 0; i < 8; i++ {
		dst[quicIVLen-1-i] ^= byte(pn >> (8 * i))
	}
}
